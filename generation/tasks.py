"""Celery tasks of the generation app: take an id, call a service. The name is pinned (queued messages name it)
and the limits come from synthstudio.task_limits. Idempotent: synthstudio.jobs.run_job skips a run that
finished or that a live worker holds; a run resumed after a crash skips finished items (RunExecution keeps its
own lease inside the run). Stalled runs are found by synthstudio.jobs.recover_stalled_jobs like every job."""

from __future__ import annotations

from celery import Task, shared_task

from generation import services
from generation.models import GenerationRun
from synthstudio import task_limits
from synthstudio.jobs import register_job_kind, run_job


@shared_task(bind=True, acks_late=True, name="generation.run", **task_limits.GENERATION.options())
def generation_run_task(self: Task, run_id: int) -> None:
    run_job(self, GenerationRun.objects.all(), run_id, lambda run: services.run_execute(run_id=run.pk))


# Retry also sends again the items whose calls never reached the endpoint (run_resume).
register_job_kind(GenerationRun, generation_run_task, retry=lambda run: services.run_resume(run=run))
