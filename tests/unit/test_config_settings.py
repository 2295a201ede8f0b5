"""config.settings: no process starts without a real secret unless DEBUG; `check --deploy` flags the built-in one."""
import json
import os
import re
import subprocess
import sys

import pytest

from config.settings import DEV_SECRET_KEY
from tests.waiting import ROOT

BASE_ENV = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT)}


def manage_check(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args], cwd=ROOT, env={**BASE_ENV, **env},
        capture_output=True, text=True, timeout=120,
    )


REFUSED = "manage.py: SECRET_KEY must be set (the built-in development secret is accepted only with PREWARM_DEBUG=1)"


@pytest.mark.parametrize(
    "env",
    [
        {}, {"SECRET_KEY": ""}, {"SECRET_KEY": DEV_SECRET_KEY},
        # Development mode alone is no licence for the public key: anyone could mint ops tokens.
        {"PREWARM_DEV": "1"}, {"PREWARM_DEV": "1", "SECRET_KEY": DEV_SECRET_KEY},
    ],
)
def test_production_refuses_to_start_without_a_real_secret(env):
    out = manage_check(**env)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [REFUSED]


def test_a_real_secret_or_debug_starts():
    assert manage_check(SECRET_KEY="a-real-secret-from-the-environment").returncode == 0
    assert manage_check(PREWARM_DEV="1", SECRET_KEY="a-generated-development-key").returncode == 0
    assert manage_check(PREWARM_DEBUG="1").returncode == 0


def test_check_deploy_fails_on_the_built_in_secret():
    out = manage_check("--deploy", "--fail-level", "ERROR", PREWARM_DEBUG="1")
    assert out.returncode != 0
    assert "prewarm.E001" in out.stderr and "built-in development secret" in out.stderr


def test_the_built_in_secret_check_names_only_the_built_in_key(settings):
    from core.checks import builtin_secret

    assert builtin_secret() == []
    settings.SECRET_KEY = DEV_SECRET_KEY
    assert [e.id for e in builtin_secret()] == ["prewarm.E001"]


def test_bad_integer_settings_say_which_variable():
    out = manage_check(SECRET_KEY="a-real-secret-from-the-environment", PREWARM_PREFETCH="four")
    assert out.returncode != 0 and "PREWARM_PREFETCH must be an integer" in out.stderr


def test_celery_accepts_json_only():
    from django.conf import settings

    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == settings.CELERY_RESULT_SERIALIZER == "json"


PRODUCTION = {
    "SECRET_KEY": "Kq3v-production-like-secret-of-more-than-fifty-characters-7d2e9",
    "PREWARM_ALLOWED_HOSTS": "api.example.com",
    "PREWARM_SECURE_SSL_REDIRECT": "1",
    "PREWARM_TRUST_X_FORWARDED_PROTO": "1",
    "PREWARM_HSTS_SECONDS": "31536000",
    "PREWARM_HSTS_INCLUDE_SUBDOMAINS": "1",
    "PREWARM_HSTS_PRELOAD": "1",
}


def settings_of(*names, **env):
    code = "import json; from django.conf import settings as s; print(json.dumps([getattr(s, n) for n in %r]))"
    out = subprocess.run(
        [sys.executable, "-c", code % (names,)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**BASE_ENV, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_check_deploy_is_clean_with_production_settings():
    out = manage_check("--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert out.returncode == 0, out.stderr
    assert "no issues" in out.stdout


def test_production_names_its_hosts_development_answers_any():
    secret = {"SECRET_KEY": PRODUCTION["SECRET_KEY"]}
    assert settings_of("ALLOWED_HOSTS", **secret) == [["localhost", "127.0.0.1", "[::1]"]]
    assert settings_of("ALLOWED_HOSTS", PREWARM_DEV="1", **secret) == [["*"]]
    assert settings_of("ALLOWED_HOSTS", PREWARM_ALLOWED_HOSTS=" a.example , b.example,", **secret) == [
        ["a.example", "b.example"]
    ]
    out = manage_check("--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "PREWARM_ALLOWED_HOSTS": "*"})
    assert out.returncode != 0 and "prewarm.W001" in out.stderr


def test_https_settings_come_from_the_environment():
    names = ("SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
             "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE")
    assert settings_of(*names, **PRODUCTION) == [True, ["HTTP_X_FORWARDED_PROTO", "https"], 31536000, True, True,
                                                 True, True]
    assert settings_of(*names, SECRET_KEY=PRODUCTION["SECRET_KEY"]) == [False, None, 0, False, False, False, False]
    assert settings_of("SESSION_COOKIE_SECURE", **{**PRODUCTION, "PREWARM_SECURE_COOKIES": "0"}) == [False]


@pytest.mark.parametrize("prefix", ["pw*", "pw:x", "{pw}", "p w", "pwé", "", "-pw", "x" * 65])
def test_a_key_prefix_outside_the_key_grammar_stops_the_process(prefix):
    """A '*' in it would make the verifier's SCAN and seed_demo --reset's UNLINK reach other
    applications' keys; a brace would put every key in one Redis Cluster slot."""
    out = manage_check(SECRET_KEY="a-real-secret-from-the-environment", PREWARM_KEY_PREFIX=prefix)
    if prefix == "":
        assert out.returncode == 0  # unset: the default
    else:
        assert out.returncode != 0 and "PREWARM_KEY_PREFIX must be" in out.stderr, out.stderr


# -- secrets only from the environment -------------------------------------------------------

SECRET = {"SECRET_KEY": PRODUCTION["SECRET_KEY"]}
URLS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")


def test_every_secret_and_password_comes_from_the_environment():
    names = ("SECRET_KEY", "PREWARM_TOKEN_KEY", "DATABASES", "REDIS_URL", "CELERY_BROKER_URL")
    env = {**SECRET, "PREWARM_TOKEN_KEY": "token-key-from-the-environment",
           "DATABASE_URL": "postgres://app:db-pw-from-env@db.example:5432/prewarm",
           "REDIS_URL": "redis://:cache-pw-from-env@cache.example:6379/0",
           "CELERY_BROKER_URL": "redis://:broker-pw-from-env@broker.example:6379/0"}
    secret, token_key, databases, redis_url, broker_url = settings_of(*names, **env)
    assert (secret, token_key) == (env["SECRET_KEY"], env["PREWARM_TOKEN_KEY"])
    assert databases["default"]["PASSWORD"] == "db-pw-from-env"
    assert (redis_url, broker_url) == (env["REDIS_URL"], env["CELERY_BROKER_URL"])


def test_without_the_environment_no_password_is_made_up():
    """The defaults name local development servers, with no password in them; the token key,
    when not given, is derived from SECRET_KEY (itself required), never a literal."""
    token_key, databases, redis_url, broker_url = settings_of("PREWARM_TOKEN_KEY", "DATABASES", "REDIS_URL",
                                                              "CELERY_BROKER_URL", **SECRET)
    assert databases["default"]["PASSWORD"] in ("", None)
    assert "@" not in redis_url and "@" not in broker_url
    other_key = settings_of("PREWARM_TOKEN_KEY", SECRET_KEY="another-secret-of-the-environment")[0]
    assert token_key != other_key and SECRET["SECRET_KEY"] not in token_key


# Assignments of a quoted literal to a secret-sounding name, a URL with a literal password
# (not a ${VAR} reference), and long random-looking literals (keys, tokens).
SECRET_LITERALS = [
    re.compile(r"""(?i)(secret|passw(or)?d|token_key|api_key|private_key)\w*["']?\s*[:=]\s*["'](?!\$\{)[^"'\s]{4,}"""),
    re.compile(r"""(?i)^\s*-?\s*\w*(secret|passw(or)?d)\w*\s*:\s*(?![$'"\[{])\S{4,}"""),  # YAML, unquoted
    re.compile(r"""\b[a-z][a-z0-9+]*://[^\s/:@'"]*:(?!\$\{)[^\s@'"]+@"""),
    re.compile(r"""["'](?=[A-Za-z0-9+/_=-]*[0-9])(?=[A-Za-z0-9+/_=-]*[A-Z])[A-Za-z0-9+/_=-]{32,}["']"""),
]


def committed_config_files():
    return sorted([*(ROOT / "config").glob("*.py"), ROOT / "docker-compose.yml", ROOT / "Dockerfile",
                   ROOT / "Procfile"])


def test_no_secret_is_written_in_config_or_compose():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in committed_config_files()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if any(p.search(line) for p in SECRET_LITERALS)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("line", [
    'SECRET_KEY = "Kq3v-x8PqZ2m9LwT4rN7yB1cD6fH0jK5sV"', "  POSTGRES_PASSWORD: hunter22",
    "  DATABASE_URL: postgres://prewarm:prewarm@postgres:5432/prewarm", 'PREWARM_TOKEN_KEY = "abcdef123456"',
    'KEY = "AKIAIOSFODNN7EXAMPLEkq3v8PqZ2m9LwT4r"',
])
def test_the_secret_scan_finds_a_written_secret(line):
    assert any(p.search(line) for p in SECRET_LITERALS)
