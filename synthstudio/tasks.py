"""Celery tasks of the core: take ids, call a service. Names are pinned (queued messages name them), limits come
from synthstudio.task_limits, and synthstudio.jobs.run_job claims the job under a lease, so a task delivered
twice does nothing the second time."""

from __future__ import annotations

from celery import Task, shared_task

from synthstudio import services, task_limits
from synthstudio.jobs import register_job_kind, run_job
from synthstudio.models import ImportJob, JobStatus


@shared_task(bind=True, name="synthstudio.tasks.import_file", **task_limits.IMPORT.options())
def import_file(self: Task, job_id: int) -> None:
    """Restarts from scratch after a crash: the rows are written in one transaction, so nothing half-lands."""
    run_job(self, ImportJob.objects.select_related("project", "codebook"), job_id, _import_and_announce)


def _import_and_announce(job: ImportJob) -> None:
    """Run the import; once it succeeded, tell the other apps (services.samples_imported). Inside run_job, so a
    re-delivered message of a finished import announces nothing twice."""
    services.import_run(job=job)
    if job.status == JobStatus.SUCCEEDED:
        services.samples_imported.send(sender=ImportJob, job=job)


register_job_kind(ImportJob, import_file)
