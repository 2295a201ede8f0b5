"""The outbox relay: LISTEN for trigger NOTIFYs, drain the outbox into Celery, delete rows only
after the broker accepted them. Several relays may run at once (FOR UPDATE SKIP LOCKED)."""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import connection

from core.cache_store import TOMBSTONE_TTL
from core.triggers import NOTIFY_CHANNEL

from . import coalesce, events

log = logging.getLogger("prewarm.relay")

BATCH_ROWS = 200
# The outbox is a queue; when the server's autovacuum is off or slow, dead rows pile up in
# the index the relay scans. Vacuum it ourselves after this many deletes.
VACUUM_EVERY_ROWS = 20_000
# NOTIFY is lost while the listener is disconnected, so poll as a safety net.
POLL_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 10.0
# A stop request is seen within this long even while waiting out a long poll.
STOP_CHECK_SECONDS = 0.5

# Take and delete a batch in one statement; the transaction around it rolls the delete back
# when publishing fails, so the rows wait for the next try.
_TAKE = """DELETE FROM prewarm_outbox
            WHERE id = ANY(ARRAY(SELECT id FROM prewarm_outbox ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED))
        RETURNING id, kind, ids, extract(epoch FROM created_at)::float8"""


def connect() -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    conn = psycopg.connect(**params, autocommit=True)
    # Losing the last deletes in a Postgres crash only re-relays rows (rebuilds are
    # idempotent), so the relay need not wait for its commits to reach disk.
    conn.execute("SET synchronous_commit = off")
    return conn


_ID_LIMIT = 2**63


@dataclass(frozen=True, slots=True)
class Batch:
    """Outbox rows sorted into what to rebuild, and what names nothing that can be rebuilt."""

    ids: dict[str, set[int]]  # kind -> ids
    committed: dict[str, float]  # kind -> the earliest commit among its rows (epoch s)
    refused: list[tuple[object, str]]  # (row id, why), a row's bad ids even when the rest pass


def sort_rows(rows: Iterable[tuple]) -> Batch:
    """Group (id, kind, ids, created) rows by kind. The triggers write only good rows, but
    anyone with INSERT on the table (another service, a hand-written fix) can write any:
    an unknown kind, a NULL or a nested array in ids (one such row once failed every batch,
    holding the outbox back for ever). Whatever names no event is refused with the reason;
    every good id of a row is kept."""
    grouped: dict[str, set[int]] = defaultdict(set)
    committed: dict[str, float] = {}
    refused: list[tuple[object, str]] = []
    for row_id, kind, ids, created in rows:
        if kind not in events.KINDS:
            refused.append((row_id, f"unknown kind {kind!r:.40} with ids {ids!r:.80}"))
            continue
        if not isinstance(ids, list):
            refused.append((row_id, f"{kind} ids are not an array: {ids!r:.80}"))
            continue
        good = [i for i in ids if type(i) is int and 0 < i < _ID_LIMIT]  # events.is_id, inlined: per id
        if len(good) < len(ids):
            bad = [i for i in ids if not events.is_id(i)]
            refused.append((row_id, f"{len(bad)} {kind} ids are not row ids: {bad!r:.80}"))
        if not good:
            continue
        grouped[kind].update(good)
        if isinstance(created, float) and math.isfinite(created):
            committed[kind] = min(created, committed.get(kind, created))
    return Batch(dict(grouped), committed, refused)


def drain_once(conn: psycopg.Connection, batch_rows: int = BATCH_ROWS) -> int:
    """Move one batch of outbox rows to Celery; returns rows relayed (0 when empty).

    Raises when Redis or the broker refuses: the transaction rolls back and the rows wait.
    """
    started, seen_at = time.perf_counter(), time.time()
    # Pipeline mode sends BEGIN with the DELETE, and COMMIT with the pipeline's end: two
    # round trips a batch instead of three.
    with conn.pipeline(), conn.transaction():
        rows = conn.execute(_TAKE, [batch_rows]).fetchall()
        if not rows:
            return 0
        batch = sort_rows(rows)
        for row_id, why in batch.refused:
            # Deleted with the batch (kept, it would fail every batch after it), so said here.
            log.error("outbox row %s refused: %s", row_id, why)
        grouped = batch.ids
        tasks = 0
        for kind, ids in grouped.items():
            tasks += events.publish(kind, ids, batch.committed.get(kind), relay=True, seen_at=seen_at)
    # For the person watching `make run` (PREWARM_LOG_LEVEL=DEBUG): each change as it passes.
    if log.isEnabledFor(logging.DEBUG):  # the summary costs a join per batch otherwise
        log.debug(
            "relayed %d rows: %s; %d tasks published in %.1f ms", len(rows),
            ", ".join(f"{kind} {len(ids)} ids" for kind, ids in sorted(grouped.items())), tasks,
            (time.perf_counter() - started) * 1000,
        )
    return len(rows)


def drain(conn: psycopg.Connection, batch_rows: int = BATCH_ROWS, gate: Gate | None = None) -> int:
    """Relay until a batch comes back short: the outbox held no more rows when it was taken,
    and every row committed since has sent its own NOTIFY. (Asking again until a batch came
    back empty cost a gate check and three Postgres round trips per change at low rates.)
    With a gate, each batch waits for it first."""
    total = 0
    while True:
        if gate is not None:
            gate.wait()
        n = drain_once(conn, batch_rows)
        total += n
        if n < batch_rows:
            return total


class Gate:
    """Holds the relay back while `limit` rebuild tasks wait unstarted (workers.coalesce).

    Meanwhile new rows stay in the outbox, and the next batch takes them all: one task of
    many ids instead of many tasks of one. A worker that starts a task rings the bell and
    the relay goes on at once. A lost task's ticket stops counting after TICKET_STALE_MS,
    so a hold never lasts longer than that (or a stop request).
    """

    POLL_SECONDS = 0.1  # Redis ends blocking waits in ~100 ms steps anyway (hz 10)

    def __init__(self, stop: threading.Event | None = None, limit: int | None = None):
        self.stop = stop or threading.Event()
        self.limit = settings.PREWARM_WAITING_TASKS if limit is None else limit
        self.held_seconds = 0.0  # in all, for the log

    def wait(self) -> None:
        if self.limit <= 0:
            return
        t0 = time.monotonic()
        deadline = t0 + coalesce.TICKET_STALE_MS / 1000
        while not self.stop.is_set() and coalesce.waiting() >= self.limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            coalesce.wait_for_start(min(left, self.POLL_SECONDS))
        self.held_seconds += time.monotonic() - t0


class Vacuumer:
    """Counts relayed rows and, every VACUUM_EVERY_ROWS of them, vacuums the outbox and forgets
    deleted rows' versions older than any tombstone (every delete also relays a row)."""

    def __init__(self, every: int = VACUUM_EVERY_ROWS):
        self.every, self.pending = every, 0

    def relayed(self, conn: psycopg.Connection, rows: int) -> None:
        self.pending += rows
        if self.pending >= self.every:
            self.pending = 0
            conn.execute("VACUUM (SKIP_LOCKED) prewarm_outbox")
            prune_deleted(conn)


def prune_deleted(conn: psycopg.Connection) -> int:
    """Drop the deleted-row versions whose tombstones have expired; returns rows dropped."""
    cur = conn.execute(
        "DELETE FROM prewarm_deleted WHERE deleted_at < now() - make_interval(secs => %s)", [TOMBSTONE_TTL]
    )
    return cur.rowcount


def run(stop: threading.Event, *, batch_rows: int = BATCH_ROWS, poll: float = POLL_SECONDS) -> None:
    """Relay until `stop` is set, surviving lost connections to Postgres, Redis or the broker."""
    backoff = 0.5
    while not stop.is_set():
        try:
            with connect() as listener, connect() as worker:
                listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                log.info("relay listening on %s; catching up", NOTIFY_CHANNEL)
                gate = Gate(stop)
                caught_up = drain(worker, batch_rows, gate)
                log.info("caught up: %d outbox rows relayed, %d old deletions forgotten", caught_up,
                         prune_deleted(worker))
                backoff = 0.5
                vacuum = Vacuumer()
                while not stop.is_set():
                    wait_for_notify(listener, stop, poll)
                    vacuum.relayed(worker, drain(worker, batch_rows, gate))
        except psycopg.OperationalError as exc:
            log.warning("relay lost Postgres (%s); retrying in %.1fs", exc, backoff)
        except Exception as exc:  # Redis or broker refused: rows stay in the outbox
            log.warning(
                "relay could not publish (%s: %s); outbox waits, retrying in %.1fs", type(exc).__name__, exc, backoff
            )
        stop.wait(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)


def wait_for_notify(listener: psycopg.Connection, stop: threading.Event, poll: float) -> None:
    """Return on a NOTIFY, after `poll` seconds, or soon after `stop` is set.

    One long `notifies(timeout=poll)` call cannot be interrupted by a signal handler, so a
    relay started with a long poll would take that long to obey SIGTERM: wait in slices.
    """
    deadline = time.monotonic() + poll
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for _ in listener.notifies(timeout=min(left, STOP_CHECK_SECONDS), stop_after=1):
            return


def backlog(conn: psycopg.Connection) -> tuple[int, float | None]:
    """Outbox rows waiting and the age in seconds of the oldest."""
    count, oldest = conn.execute(
        "SELECT count(*), extract(epoch FROM clock_timestamp() - min(created_at))::float8 FROM prewarm_outbox"
    ).fetchone()
    return count, oldest


