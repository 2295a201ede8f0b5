"""The Celery application, configured from Django settings (CELERY_* names)."""
import os

from celery import Celery
from kombu import Exchange, Queue

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
app.autodiscover_tasks(["workers", "schedules"])
