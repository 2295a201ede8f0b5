"""Celery app and tasks: `celery -A workers worker` / `celery -A workers beat`."""
from .app import app

__all__ = ["app"]
