"""Print a signed API bearer token for a profile (viewer or ops)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from api import tokens
from core.models import Profile


class Command(BaseCommand):
    help = (
        "Print a bearer token for PROFILE_ID (add --ops for the ops scope). An ops token reads no "
        "viewer's data: its id names who holds it (an existing profile, or 0 for none)."
    )

    def add_arguments(self, parser):
        parser.add_argument("profile_id", type=int)
        parser.add_argument("--ops", action="store_true", help="token for /api/v1/ops/* routes")
        parser.add_argument(
            "--ttl", type=int, default=None,
            help=f"lifetime in seconds (at most {tokens.MAX_TTL_VIEWER} for a viewer, {tokens.MAX_TTL_OPS} for ops)",
        )

    def handle(self, *args, profile_id, ops, ttl, **options):
        cap = tokens.max_ttl(ops=ops)
        ttl = min(settings.PREWARM_TOKEN_TTL, cap) if ttl is None else ttl
        if ttl <= 0:
            raise CommandError("--ttl must be a positive number of seconds")
        if ttl > cap:
            raise CommandError(f"--ttl is at most {cap} s for {'an ops' if ops else 'a viewer'} token")
        if not (ops and profile_id == 0) and not Profile.objects.filter(pk=profile_id).exists():
            hint = " (an ops token names an existing profile, or 0 for none)" if ops else ""
            raise CommandError(f"no profile with id {profile_id}{hint}")
        self.stdout.write(tokens.issue(profile_id, ops=ops, ttl=ttl))
