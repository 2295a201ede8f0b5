"""The Celery application, configured from Django settings (CELERY_* names)."""
import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

INVALIDATE_QUEUE = "invalidate"
WARMUP_QUEUE = "warmup"

app = Celery("workers")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Two queues so a bulk warm-up never sits in front of an invalidation.
app.conf.task_queues = (Queue(INVALIDATE_QUEUE), Queue(WARMUP_QUEUE))
app.conf.task_default_queue = INVALIDATE_QUEUE
app.autodiscover_tasks(["workers", "schedules"])
