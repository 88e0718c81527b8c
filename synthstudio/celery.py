"""The Celery app. Job state lives in database rows (see synthstudio.jobs), so no result backend is used."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthstudio.settings")

app = Celery("synthstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from celery.signals import task_prerun  # noqa: E402

# Importing the module connects the worker heartbeat signals.
from synthstudio import worker_heartbeat  # noqa: E402,F401


@task_prerun.connect
def reset_query_log(**kwargs) -> None:
    """With DEBUG on, Django records every query until the next request starts; a worker has no requests,
    so start each task with an empty log (long imports and generation runs otherwise grow without bound)."""
    from django.db import reset_queries

    reset_queries()
