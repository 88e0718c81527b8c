"""Celery tasks of curation: take ids, load the row, call a service. Safe to run twice: a finished job is
left alone, and an export whose file exists is not written again (snapshots never change)."""

from __future__ import annotations

from celery import shared_task

from synthstudio.models import JobStatus

from . import curation_services
from .models import ExportJob, RefinementRun


@shared_task
def refinement_run_task(run_id: int) -> None:
    run = RefinementRun.objects.select_related("project").filter(pk=run_id).first()
    if run is not None and not run.is_finished:
        curation_services.refinement_run_execute(run=run)


@shared_task
def export_job_task(job_id: int) -> None:
    job = ExportJob.objects.select_related("snapshot__project").filter(pk=job_id).first()
    if job is not None and job.status != JobStatus.SUCCEEDED:
        curation_services.export_job_execute(job=job)
