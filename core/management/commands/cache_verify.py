"""Prove the cache holds what Postgres says: rebuild entries in memory and compare them with Redis."""
import argparse

import orjson
import redis
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from core import drift, verify

EXIT_DRIFT = 1
EXIT_ERROR = 2


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def families(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(drift.FAMILIES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown family {', '.join(unknown) or repr(text)}; choose from {', '.join(drift.FAMILIES)}"
        )
    return names


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class Command(BaseCommand):
    help = (
        "Rebuild cache entries from Postgres in memory and compare them with Redis: missing, stale and "
        "orphan entries per family. Exit 0 when clean, 1 on drift, 2 on error."
    )

    def add_arguments(self, parser):
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--all", action="store_true", help="every profile, class and fragment (the default)")
        scope.add_argument("--sample", type=positive, metavar="N",
                           help="N random profiles and their classes, and N random fragments")
        parser.add_argument("--family", type=families, action="append", metavar="FAMILY",
                            help=f"{' | '.join(drift.FAMILIES)}; repeat or comma-separate (default: all three)")
        parser.add_argument("--repair", action="store_true",
                            help="rewrite missing and stale entries through the versioned store, delete orphans")
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
        parser.add_argument("--jobs", type=positive, default=2, help="processes for --all (default 2)")

    def handle(self, *args, **opts):
        chosen = [name for group in opts["family"] or [list(drift.FAMILIES)] for name in group]
        sample = opts["sample"]
        scope = verify.Scope() if sample is None else verify.Scope(sample=sample, all_classes=False,
                                                                   all_fragments=False)
        bar = self.stdout.isatty() and not opts["json"] and sample is None
        try:
            with _Bar(self.stdout, bar) as progress:
                report = verify.run(chosen, scope, repair=opts["repair"], jobs=opts["jobs"], on_progress=progress)
            try:
                verify.count(report)
            except redis.RedisError:
                pass  # the report stands; only its metric is lost
        except redis.RedisError as exc:
            raise CommandError(f"Redis unreachable: {one_line(exc)}", returncode=EXIT_ERROR) from None
        except DatabaseError as exc:
            raise CommandError(f"Postgres unreachable: {one_line(exc)}", returncode=EXIT_ERROR) from None
        if opts["json"]:
            self.stdout.write(orjson.dumps(report.as_dict()).decode())
        else:
            self.stdout.write(table(report))
        if not report.clean:
            raise SystemExit(EXIT_DRIFT)


def table(report: drift.Report) -> str:
    counts = report.counts()
    header = ["family", "checked", *drift.KINDS]
    if report.repaired is not None:
        header += ["repaired", "refused"]
    rows = [header]
    for family in report.families:
        row = [family, str(report.checked.get(family, 0))]
        for kind in drift.KINDS:
            checked = kind != drift.ORPHAN or report.orphans_checked.get(family, False)
            row.append(str(counts[family][kind]) if checked else "-")
        if report.repaired is not None:
            row.append(str(sum(report.repaired.get(family, {}).values())))
            row.append(str(report.refused.get(family, 0)))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"cache_verify ({report.scope}) in {report.seconds:.1f} s"]
    lines += ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
              for r in rows]
    if report.refused and any(report.refused.values()):
        lines.append("refused: Redis holds a newer version or a tombstone there; see the log")
    lines.append("clean" if report.clean else f"drift: {len(report.findings)} entries (logged as warnings)")
    return "\n".join(lines)


class _Bar:
    """A rich progress bar over the profile pass, only on a terminal."""

    def __init__(self, out, enabled: bool):
        self.out, self.enabled, self.progress, self.task = out, enabled, None, None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.progress = Progress(
                "profiles", BarColumn(), MofNCompleteColumn(), "[progress.percentage]{task.percentage:>3.0f}%",
                TimeRemainingColumn(), console=Console(file=self.out._out), transient=True,
            )
            self.progress.start()
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task("profiles", total=total)
        self.progress.update(self.task, completed=done)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False
