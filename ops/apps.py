"""App config for operations: warm-up jobs and their chunks."""
from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Prewarm operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin

        admin.site.index_template = "ops/admin_index.html"  # links the freshness page
