"""App config for operations: warm-up jobs and their chunks."""
from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Prewarm operations"
    default_auto_field = "django.db.models.BigAutoField"
