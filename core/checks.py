"""The built-in development secret, and the deploy checks that keep it and a wildcard host out."""
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

# Public (it is in the repository): whoever knows it can sign API tokens and sessions. The
# settings accept it only with DEBUG; development tooling generates a key per stack instead.
DEV_SECRET_KEY = "prewarm-development-secret-do-not-use-in-production"


@register(Tags.security, deploy=True)
def builtin_secret(app_configs=None, **kwargs):
    """`check --deploy` fails while SECRET_KEY or the token key is the built-in secret (only
    DEBUG allows it; a token key derived from it is caught by the first)."""
    return [
        Error(
            f"{name} is the built-in development secret: anyone can sign API tokens and sessions.",
            hint=f"Set {name} in the environment to a long random value.",
            id="prewarm.E001",
        )
        for name in ("SECRET_KEY", "PREWARM_TOKEN_KEY")
        if getattr(settings, name, None) == DEV_SECRET_KEY
    ]


@register(Tags.security, deploy=True)
def any_host(app_configs=None, **kwargs):
    """A Host header is trusted when the admin builds links; production names its hosts."""
    if "*" not in settings.ALLOWED_HOSTS:
        return []
    return [
        Warning(
            "ALLOWED_HOSTS accepts any Host header ('*').",
            hint="Set PREWARM_ALLOWED_HOSTS to the names the API is served under (comma-separated).",
            id="prewarm.W001",
        )
    ]
