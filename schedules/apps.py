"""App config for schedules: syncs the declared beat schedules after every migrate."""
from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _sync(sender, using="default", **kwargs):
    from . import beat

    beat.sync(using=using)


class SchedulesConfig(AppConfig):
    name = "schedules"
    verbose_name = "Prewarm schedules"

    def ready(self):
        # Django sends post_migrate only for apps that have a models module, and this one has
        # none: listen for django_celery_beat's, whose tables the schedules live in.
        post_migrate.connect(
            _sync, sender=apps.get_app_config("django_celery_beat"), dispatch_uid="prewarm.schedules.sync"
        )
