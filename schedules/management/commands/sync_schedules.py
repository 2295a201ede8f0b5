"""Create or update Prewarm's beat schedules (also done after every migrate)."""
from django.core.management.base import BaseCommand

from schedules import beat


class Command(BaseCommand):
    help = "Create or update the declared beat schedules (idempotent)."

    def handle(self, *args, **options):
        self.stdout.write(f"{beat.sync()} schedules in place")
