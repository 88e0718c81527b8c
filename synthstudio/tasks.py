"""Celery tasks of the core: take ids, call a service. Safe to run twice (a finished job is left alone)."""

from __future__ import annotations

from celery import shared_task

from . import services
from .models import ImportJob


@shared_task
def import_file(job_id: int) -> None:
    job = ImportJob.objects.select_related("project", "codebook").filter(pk=job_id).first()
    if job is None:  # the project was deleted meanwhile
        return
    services.import_run(job=job)
