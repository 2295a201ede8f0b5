"""App config for the workers (tasks, outbox relay)."""
from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Prewarm workers"
