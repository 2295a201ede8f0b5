"""App config for schedules: syncs the declared beat schedules after every migrate."""
from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync(sender, **kwargs):
    from . import beat

    beat.sync()


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Prewarm schedules"

    def ready(self):
        post_migrate.connect(_sync, sender=self, dispatch_uid="prewarm.schedules.sync")
