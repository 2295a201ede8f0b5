"""App config for the workers (tasks, outbox relay); connects the signal path."""
from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Prewarm workers"

    def ready(self):
        from . import signals

        signals.connect()
