"""App config for the API."""
from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Prewarm API"

    def ready(self):
        from . import metrics

        metrics.register_local_gauges(_local_gauges)


def _local_gauges():
    # Wired here, not in api.metrics: metrics must not import the tracker (an import circle).
    from . import metrics, tracking

    tracker = tracking.get()
    return metrics.LocalGauges(len(tracker.cache), tracker.cache.size_bytes, tracker.alive)
