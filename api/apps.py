"""App config for the API."""
from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Prewarm API"

    def ready(self):
        # Wired here: api.metrics must not import the local layer (that was an import circle).
        from . import local_layer, metrics

        metrics.register_local_gauges(local_layer.gauges)
