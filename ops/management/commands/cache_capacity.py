"""Size Redis for a data set from entries built here (ops.capacity)."""
import orjson
from django.core.management.base import BaseCommand, CommandError

from ops import capacity


def _mib(n: int) -> str:
    return f"{n / capacity.MB:,.1f} MiB"


class Command(BaseCommand):
    help = "Redis memory per entry family and in total for N profiles, measured on real entries."

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, required=True, metavar="N", help="viewers to size for")
        parser.add_argument("--days", type=int, metavar="D", help="kept guide days (default: the kept window)")
        parser.add_argument("--json", action="store_true", help="one JSON document instead of the table")

    def handle(self, *args, **opts):
        try:
            est = capacity.estimate(opts["profiles"], opts["days"])
        except capacity.CapacityError as exc:
            raise CommandError(str(exc)) from None
        if opts["json"]:
            self.stdout.write(orjson.dumps(est.as_dict(), option=orjson.OPT_INDENT_2).decode())
            return
        rows = [("family", "entries", "bytes/entry", "total")]
        rows += [(name, f"{f.entries:,}", f"{f.bytes_per_entry:,.0f}", _mib(f.bytes))
                 for name, f in est.families.items()]
        rows.append(("total", "", "", _mib(est.total_bytes)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                                        enumerate(zip(row, widths))))
        self.stdout.write(
            f"maxmemory {est.maxmemory_bytes // capacity.MB}mb  (total x {capacity.HEADROOM} for fragmentation,"
            f" transient keys and LRU room; {est.profiles:,} profiles, {est.days} guide days,"
            f" {est.families['class'].entries:,} classes in use here)"
        )
