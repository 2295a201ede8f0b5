"""App config for the Prewarm domain."""
from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Prewarm domain"
