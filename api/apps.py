"""App config for the API."""
from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Prewarm API"
