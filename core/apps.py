"""App config for the Prewarm domain."""
from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Prewarm domain"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import checks, timestamps  # noqa: F401  (importing checks registers them)

        connection_created.connect(timestamps.register, dispatch_uid="prewarm-timestamps")
