"""Warm the cache: profiles (all or some regions or ids), classes and EPG fragments."""
import sys

from django.core.management.base import BaseCommand, CommandError

from core import services, warmup
from core.models import Channel, Region


def _bar(p: warmup.Progress, width: int = 30) -> str:
    frac = p.done / p.total if p.total else 1.0
    eta = f"{p.eta:5.1f}s" if p.eta is not None else "  -  "
    return f"\r[{'#' * int(frac * width):<{width}}] {p.done:>9}/{p.total} {p.rate:>9.0f}/s ETA {eta}"


class Command(BaseCommand):
    help = "Rebuild cache entries in bulk; safe while invalidations flow; resumable."

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group(required=True)
        scope.add_argument("--all", action="store_true", help="every profile, class and EPG fragment")
        scope.add_argument("--region", nargs="+", metavar="CODE", help="profiles and classes of these regions")
        scope.add_argument("--profiles", nargs="+", type=int, metavar="ID", help="these profiles")
        scope.add_argument("--epg", action="store_true", help="EPG fragments of every channel only")
        parser.add_argument("--restart", action="store_true", help="forget finished spans and start over")
        parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")

    def handle(self, *args, **opts):
        tty = sys.stdout.isatty()

        def show(p):
            if tty or p.done == p.total:
                self.stdout.write(_bar(p), ending="\n" if p.done == p.total else "")
                self.stdout.flush()

        if opts["profiles"]:
            outcome = services.rebuild_profiles(opts["profiles"])
            self.stdout.write(
                f"profiles: {outcome.written} written, {outcome.refused} newer kept, {outcome.deleted} deleted"
            )
            return
        if opts["all"] or opts["epg"]:
            ids = list(Channel.objects.values_list("id", flat=True))
            for i in range(0, len(ids), 50):
                services.rebuild_epg(ids[i : i + 50])
            self.stdout.write(f"epg: {len(ids)} channels warmed for every region time zone")
            if opts["epg"]:
                return
        region_ids = None
        scope = "all"
        if opts["region"]:
            found = dict(Region.objects.filter(code__in=opts["region"]).values_list("code", "id"))
            unknown = sorted(set(opts["region"]) - found.keys())
            if unknown:
                raise CommandError(f"unknown region code(s): {', '.join(unknown)}")
            region_ids = sorted(found.values())
            scope = "regions:" + ",".join(sorted(found))
        if opts["jobs"] < 1:
            raise CommandError("--jobs must be at least 1")
        progress = warmup.warm_profiles(
            scope, region_ids, jobs=opts["jobs"], resume=not opts["restart"], on_progress=show
        )
        classes = services.rebuild_regions(region_ids)
        self.stdout.write(
            f"profiles: {progress.done} warmed at {progress.rate:.0f}/s; classes: {classes.written} rebuilt"
        )
