"""Celery tasks of curation: take ids, load the row, call a service. Safe to run twice: a finished job is
left alone, an export whose file exists is not written again (snapshots never change), a snapshot build
re-run after a crash rebuilds the hidden row it reserved, and an import commits together with its job's
success (so it never lands twice)."""

from __future__ import annotations

from celery import shared_task

from synthstudio.models import JobStatus

from . import curation_services
from .models import ExportJob, LabelStudioImportJob, RefinementRun, SnapshotJob


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


@shared_task
def snapshot_job_task(job_id: int) -> None:
    job = SnapshotJob.objects.select_related("project", "snapshot", "created_by").filter(pk=job_id).first()
    if job is not None and not job.is_finished:
        curation_services.snapshot_job_execute(job=job)


@shared_task
def labelstudio_import_task(job_id: int) -> None:
    job = LabelStudioImportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is not None and not job.is_finished:
        curation_services.labelstudio_import_job_execute(job=job)
