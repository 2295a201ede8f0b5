"""A development superuser for the admin (`make run` creates it and prints its login)."""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create or reset a superuser for local development (PREWARM_DEV=1 only)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", required=True)

    def handle(self, *args, **opts):
        if not settings.DEV_MODE:
            raise CommandError("refused: a development login, and PREWARM_DEV is not set")
        if len(opts["password"]) < 8:
            raise CommandError("--password must be at least 8 characters")
        user, created = get_user_model().objects.get_or_create(
            username=opts["username"], defaults={"is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(opts["password"])
        user.save()
        self.stdout.write(f"{'created' if created else 'reset'} superuser {user.username}")
