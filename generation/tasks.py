"""Celery tasks of the generation app: take an id, call a service. The name is pinned (queued messages name it)
and the limits come from synthstudio.task_limits. Idempotent: synthstudio.jobs.run_job skips a run that
finished or that a live worker holds; a run resumed after a crash skips finished items (RunExecution keeps its
own lease inside the run). Stalled runs are found by synthstudio.jobs.recover_stalled_jobs like every job.

Imports go one way: generation.services.runs imports this module to enqueue, and each task imports the
service it calls inside its body."""

from __future__ import annotations

from celery import Task, shared_task

from generation.models import GenerationRun
from synthstudio import task_limits
from synthstudio.jobs import register_job_kind, run_job


@shared_task(bind=True, acks_late=True, name="generation.run", **task_limits.GENERATION.options())
def generation_run_task(self: Task, run_id: int) -> None:
    from generation.services.runs import run_execute

    run_job(self, GenerationRun.objects.all(), run_id, lambda run: run_execute(run_id=run.pk))


def generation_run_retry(run: GenerationRun) -> None:
    """Retry also sends again the items whose calls never reached the endpoint (run_resume)."""
    from generation.services.runs import run_resume

    run_resume(run=run)


register_job_kind(GenerationRun, generation_run_task, retry=generation_run_retry)
