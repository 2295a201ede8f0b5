"""The Celery application, configured from Django settings (CELERY_* names)."""
import os

from celery import Celery
from celery.concurrency import get_implementation
from celery.signals import task_postrun, worker_init
from kombu import Exchange, Queue

from . import watchdog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

INVALIDATE_QUEUE = "invalidate"
WARMUP_QUEUE = "warmup"

app = Celery("workers")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Two queues so a bulk warm-up never sits in front of an invalidation.
# Each queue has its own exchange and key: with a shared default exchange a message
# would be bound into both queues.
app.conf.task_queues = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name) for name in (INVALIDATE_QUEUE, WARMUP_QUEUE)
)
app.conf.task_default_queue = INVALIDATE_QUEUE
# Celery's Django fixup closes the database connection around every task unless this is
# set; reconnecting cost ~6 ms a task here. Django's CONN_MAX_AGE and health checks still
# apply; this only lets the connection live for (2 x this) tasks between forced closes.
DB_REUSE_MAX_TASKS = 1000
app.conf["CELERY_DB_REUSE_MAX"] = DB_REUSE_MAX_TASKS


@task_postrun.connect
def _drop_broken_db_connections(sender=None, **kwargs):
    """With the reuse above, the fixup no longer closes an unusable connection after a task:
    a connection that Postgres ended (restart, failover, pg_terminate_backend) would fail
    every later task and retry in this process. After a task whose queries failed, do what
    Django does between requests. A successful task costs one attribute check."""
    from django.db import connections

    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # run inline (tests, apply()): the caller's connection and transaction, not ours
    for conn in connections.all(initialized_only=True):
        if conn.errors_occurred:
            conn.close_if_unusable_or_obsolete()


@worker_init.connect
def _at_worker_start(sender=None, **kwargs):
    """Exit rather than hang after an unrecoverable error, or past the hard time limit in a
    pool that enforces none (workers.watchdog). A warm-up-only
    worker runs at a lower CPU priority (PREWARM_WARMUP_NICE), set in the main process
    before its pool starts, so every child has it: on shared cores a bulk warm-up then
    takes what invalidations leave."""
    from django.conf import settings

    watchdog.install()
    pool = get_implementation(sender.pool_cls)  # a name or a class, resolved after this signal
    if pool.__module__ in ("celery.concurrency.solo", "celery.concurrency.thread") and sender.app.conf.task_time_limit:
        watchdog.install_time_limit(sender.app.conf.task_time_limit)  # prefork's parent enforces its own
    consumed = {q.name for q in sender.app.amqp.queues.consume_from.values()}
    if consumed == {WARMUP_QUEUE} and settings.PREWARM_WARMUP_NICE > 0:
        os.nice(settings.PREWARM_WARMUP_NICE)


app.autodiscover_tasks(["workers", "ops", "schedules"])
