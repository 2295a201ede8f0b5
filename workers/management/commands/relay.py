"""Run the outbox relay (Postgres triggers -> Celery) until SIGINT/SIGTERM."""
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from workers import relay


class Command(BaseCommand):
    help = "LISTEN for outbox NOTIFYs and relay the outbox into Celery; safe to run several."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=relay.BATCH_ROWS, help="outbox rows per transaction")
        parser.add_argument("--poll", type=float, default=relay.POLL_SECONDS, help="safety-net poll interval (s)")

    def handle(self, *args, batch, poll, **options):
        if batch <= 0 or poll <= 0:
            raise CommandError("--batch and --poll must be positive")
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        relay.run(stop, batch_rows=batch, poll=poll)
        self.stdout.write("relay stopped")
