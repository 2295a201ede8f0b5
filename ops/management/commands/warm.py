"""Warm the cache through a warm-up job (ops.jobs): the `warmup` workers run its chunks
while this follows the progress; `--detach` returns at once, `--inline` runs it here."""
import multiprocessing
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from core import redis_conn, selectors, services
from ops import jobs
from ops.models import ACTIVE, WarmupJob
from ops.scope import BadScope, parse

POLL_SECONDS = 0.5
QUIET_HINT_SECONDS = 10  # a job still queued this long: say that no warm-up worker took it
PLAIN_EVERY_SECONDS = 5  # progress lines when the output is not a terminal
LIST = 20


def _summary(doc: dict) -> str:
    seconds = f" in {doc['elapsed_seconds']:.1f}s at {doc['rate']:.0f}/s" if doc["started_at"] else ""
    return (
        f"warm-up {doc['id']} {doc['state']}: {doc['done']} of {doc['total']} entries{seconds}; "
        f"{doc['written']} written, {doc['refused']} already newer in Redis, {doc['failed']} failed"
    )


class Command(BaseCommand):
    help = "Rebuild cache entries in bulk as a warm-up job; safe while invalidations flow; resumable."

    def add_arguments(self, parser):
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--all", action="store_true", help="every profile, class and kept EPG day")
        what.add_argument("--region", nargs="+", metavar="CODE", help="profiles and classes of these regions")
        what.add_argument("--profiles", nargs="+", type=int, metavar="ID", help="these profiles")
        what.add_argument("--epg-dates", nargs="+", metavar="YYYY-MM-DD", help="every channel's guide for these days")
        what.add_argument("--epg", action="store_true", help="every channel's guide for every kept day")
        what.add_argument("--follow", type=int, metavar="JOB", help="follow a job already submitted")
        what.add_argument("--cancel", type=int, metavar="JOB", help="cancel a queued or running job")
        what.add_argument("--list", action="store_true", help="the latest jobs and their progress")
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--detach", action="store_true", help="print the job id and return")
        how.add_argument("--inline", action="store_true", help="run the chunks here (no warm-up worker needed)")
        parser.add_argument("--jobs", type=int, default=2, help="processes for --inline (default 2)")

    def handle(self, *args, **opts):
        try:
            self._handle(opts)
        except KeyboardInterrupt:
            # A job lives in Postgres: workers (or beat's resume) carry it on without us.
            job_id = self.job_id
            if job_id is None:
                self.stderr.write("\ninterrupted while submitting: `manage.py warm --list` shows whether it was")
            else:
                self.stderr.write(
                    f"\nstopped following warm-up {job_id}; it goes on (manage.py warm --follow {job_id},"
                    f" --cancel {job_id})"
                )
            sys.exit(130)

    job_id = None

    def _handle(self, opts):
        if opts["list"]:
            for job in WarmupJob.objects.all()[:LIST]:
                self.stdout.write(_summary(jobs.progress(job)) + f" [{job.created_by or '-'}: {job.scope}]")
            return
        if opts["cancel"] is not None:
            return self._cancel(self._job(opts["cancel"]))
        if opts["follow"] is not None:
            job = self._job(opts["follow"])
        else:
            try:
                job, created = jobs.submit(self._scope(opts), created_by="cli", send=not opts["inline"])
            except BadScope as exc:
                raise CommandError(str(exc)) from None
            if not created:
                self.stdout.write(f"warm-up {job.pk} for this scope is already {job.state}: following it")
        self.job_id = job.pk
        if opts["detach"]:
            self.stdout.write(str(job.pk))
            return
        doc = self._run_inline(job, opts["jobs"]) if opts["inline"] else self._follow(job)
        self.stdout.write(_summary(doc))
        if doc["state"] != "done":
            raise CommandError(f"warm-up {job.pk} ended {doc['state']}" + (f": {doc['error']}" if doc["error"] else ""))

    def _scope(self, opts):
        if opts["all"]:
            doc = {"all": True}
        elif opts["region"]:
            doc = {"regions": opts["region"]}
        elif opts["profiles"]:
            doc = {"profiles": opts["profiles"]}
        elif opts["epg_dates"]:
            doc = {"epg_dates": opts["epg_dates"]}
        else:
            kept = sorted({day.isoformat() for _, day in services.epg_windows(selectors.db_now())})
            if not kept:
                raise CommandError("no region has a time zone yet: there is no guide to warm")
            doc = {"epg_dates": kept}
        try:
            return parse(doc)
        except BadScope as exc:
            raise CommandError(str(exc)) from None

    def _job(self, job_id: int) -> WarmupJob:
        job = WarmupJob.objects.filter(pk=job_id).first()
        if job is None:
            raise CommandError(f"no warm-up job {job_id}")
        return job

    def _cancel(self, job: WarmupJob) -> None:
        if not jobs.cancel(job):
            raise CommandError(f"warm-up {job.pk} is already {job.state}")
        self.stdout.write(f"warm-up {job.pk} cancelled")

    def _run_inline(self, job: WarmupJob, processes: int) -> dict:
        if processes < 1:
            raise CommandError("--jobs must be at least 1")
        with _Bar(self.stdout) as bar:
            if processes == 1:
                _inline_loop(job.pk, on_chunk=lambda: bar.show(_progress(job)))
            else:
                # fork: the children start with this process's settings and code, and close
                # the sockets they inherit (connections are per process).
                connections.close_all()
                ctx = multiprocessing.get_context("fork")
                with ctx.Pool(processes, initializer=_child_init) as pool:
                    loops = [pool.apply_async(_inline_loop, (job.pk,)) for _ in range(processes)]
                    while not all(loop.ready() for loop in loops):
                        bar.show(_progress(job))
                        time.sleep(POLL_SECONDS)
                    for loop in loops:
                        loop.get()  # a child's error is this command's
        return _progress(job)

    def _follow(self, job: WarmupJob) -> dict:
        hinted = False
        submitted = time.monotonic()
        with _Bar(self.stdout) as bar:
            while True:
                job.refresh_from_db()
                doc = jobs.progress(job)
                bar.show(doc)
                if job.state not in ACTIVE:
                    return doc
                if not hinted and job.state == "queued" and time.monotonic() - submitted > QUIET_HINT_SECONDS:
                    hinted = True
                    self.stderr.write(
                        f"no warm-up worker has started job {job.pk} yet: is the Procfile's `warmup` running?"
                        " (--inline runs it in this process)"
                    )
                time.sleep(POLL_SECONDS)


def _progress(job: WarmupJob) -> dict:
    job.refresh_from_db()
    return jobs.progress(job)


def _child_init() -> None:
    connections.close_all()
    redis_conn.reset()


def _inline_loop(job_id: int, on_chunk=lambda: None) -> None:
    """Run the job's chunks that nobody holds until the job ends (chunks a worker or another
    process runs are waited for; a dead run's are taken over when its lease passes)."""
    while True:
        chunk_id = jobs.claim_pending(job_id)
        if chunk_id is not None:
            jobs.execute(chunk_id, send_next=False)
            on_chunk()
        elif not WarmupJob.objects.filter(pk=job_id, state__in=ACTIVE).exists():
            return
        else:
            time.sleep(POLL_SECONDS)


class _Bar:
    """rich's progress bar on a terminal; elsewhere a plain line every PLAIN_EVERY_SECONDS."""

    def __init__(self, out):
        self.out, self.progress, self.task, self.printed = out, None, None, 0.0

    def __enter__(self):
        if self.out.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("warm-up"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>8.0f}/s"), TimeRemainingColumn(),
                console=Console(file=self.out._out), transient=True,
            )
            self.progress.start()
        return self

    def show(self, doc: dict) -> None:
        if self.progress is not None:
            if self.task is None:
                self.task = self.progress.add_task("warm-up", total=doc["total"], rate=0.0)
            self.progress.update(self.task, total=doc["total"], completed=doc["done"] + doc["failed"],
                                 rate=doc["rate"])
        elif time.monotonic() - self.printed >= PLAIN_EVERY_SECONDS:
            self.printed = time.monotonic()
            eta = f", ETA {doc['eta_seconds']:.0f}s" if doc["eta_seconds"] is not None else ""
            self.out.write(
                f"warm-up {doc['id']} {doc['state']}: {doc['done']}/{doc['total']} at {doc['rate']:.0f}/s{eta}"
            )

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False
