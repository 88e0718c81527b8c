"""Enqueueing background work and telling whether anyone will run it."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from .models import WorkerHeartbeat


def enqueue(task, *args) -> None:
    """Send a Celery task once the surrounding transaction commits (the row it reads must exist)."""
    transaction.on_commit(lambda: task.delay(*args))


def worker_alive() -> bool:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return True
    return WorkerHeartbeat.any_alive()
