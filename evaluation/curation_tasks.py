"""Celery tasks of curation: take ids, load the row, call a service. Names are pinned (queued messages name
them) and limits come from synthstudio.task_limits. Safe to run twice: synthstudio.jobs.run_job skips a job
that finished or that a live worker holds, an export whose file exists is not written again (snapshots never
change), a snapshot build re-run after a crash rebuilds the hidden row it reserved, and an import commits
together with its job's success (so it never lands twice)."""

from __future__ import annotations

from pathlib import Path

from celery import Task, shared_task

from synthstudio import task_limits
from synthstudio.jobs import register_job_kind, run_job

from . import curation_services
from .models import ExportJob, LabelStudioImportJob, RefinementRun, SnapshotJob


@shared_task(
    bind=True, name="evaluation.curation_tasks.refinement_run_task", **task_limits.REFINEMENT.options()
)
def refinement_run_task(self: Task, run_id: int) -> None:
    run_job(
        self,
        RefinementRun.objects.select_related("project"),
        run_id,
        lambda run: curation_services.refinement_run_execute(run=run),
    )


@shared_task(bind=True, name="evaluation.curation_tasks.export_job_task", **task_limits.EXPORT.options())
def export_job_task(self: Task, job_id: int) -> None:
    run_job(
        self,
        ExportJob.objects.select_related("snapshot__project"),
        job_id,
        lambda job: curation_services.export_job_execute(job=job),
    )


@shared_task(bind=True, name="evaluation.curation_tasks.snapshot_job_task", **task_limits.SNAPSHOT.options())
def snapshot_job_task(self: Task, job_id: int) -> None:
    run_job(
        self,
        SnapshotJob.objects.select_related("project", "snapshot", "created_by"),
        job_id,
        lambda job: curation_services.snapshot_job_execute(job=job),
    )


@shared_task(
    bind=True,
    name="evaluation.curation_tasks.labelstudio_import_task",
    **task_limits.LABELSTUDIO_IMPORT.options(),
)
def labelstudio_import_task(self: Task, job_id: int) -> None:
    run_job(
        self,
        LabelStudioImportJob.objects.select_related("project"),
        job_id,
        lambda job: curation_services.labelstudio_import_job_execute(job=job),
    )


register_job_kind(RefinementRun, refinement_run_task)
register_job_kind(ExportJob, export_job_task)
register_job_kind(SnapshotJob, snapshot_job_task)
# The upload is deleted once the import ended: a failed one can only be retried while the file is still there.
register_job_kind(
    LabelStudioImportJob, labelstudio_import_task, can_retry=lambda job: Path(job.stored_path).exists()
)
