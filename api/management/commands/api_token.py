"""Print a signed API bearer token for a profile (viewer or ops)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from api import tokens
from core.models import Profile


class Command(BaseCommand):
    help = "Print a bearer token for PROFILE_ID (add --ops for the ops scope)."

    def add_arguments(self, parser):
        parser.add_argument("profile_id", type=int)
        parser.add_argument("--ops", action="store_true", help="token for /api/v1/ops/* routes")
        parser.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")

    def handle(self, *args, profile_id, ops, ttl, **options):
        ttl = settings.PREWARM_TOKEN_TTL if ttl is None else ttl
        if ttl <= 0:
            raise CommandError("--ttl must be a positive number of seconds")
        if not ops and not Profile.objects.filter(pk=profile_id).exists():
            raise CommandError(f"no profile with id {profile_id}")
        self.stdout.write(tokens.issue(profile_id, ops=ops, ttl=ttl))
