"""Celery tasks of labelling and routing: take ids, load the row, call a service. Names are pinned (queued
messages name them) and limits come from synthstudio.task_limits. Re-delivery is safe: synthstudio.jobs.run_job
skips a job that finished or that a live worker holds, a labelling run resumed after a crash skips samples it
already labelled, and the next routed batch is planned only while no routed item is open.

One import direction: the services import this module (they enqueue its tasks on commit); each task imports
the service it calls inside its body."""

from __future__ import annotations

import logging

from celery import Task, shared_task

from annotation.models import LabellingRun, SignalsRun
from synthstudio import task_limits
from synthstudio.jobs import register_job_kind, run_job
from synthstudio.models import Project, SampleActionJob

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="annotation.tasks.labelling_run_task", **task_limits.LABELLING.options())
def labelling_run_task(self: Task, run_id: int) -> None:
    from annotation.labelling.services import labelling_run_execute

    run_job(
        self,
        LabellingRun.objects.select_related("project", "codebook"),
        run_id,
        lambda run: labelling_run_execute(run=run),
    )


@shared_task(bind=True, name="annotation.tasks.signals_run_task", **task_limits.SIGNALS.options())
def signals_run_task(self: Task, run_id: int) -> None:
    """A failure is recorded on the run by run_job (the page shows it instead of a run stuck "running")."""
    from annotation.routing.signals import signals_refresh

    run_job(
        self,
        SignalsRun.objects.select_related("project"),
        run_id,
        lambda run: signals_refresh(project=run.project, run=run),
    )


@shared_task(name="annotation.tasks.routing_next_batch_task", **task_limits.ROUTING.options())
def routing_next_batch_task(project_id: int) -> None:
    """Queued by routing_after_answer (annotation.routing.services) once a routed batch is fully answered:
    plan and route the next."""
    from annotation.routing.services import routing_route_next_batch

    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        routing_route_next_batch(project=project, only_when_answered=True)


register_job_kind(LabellingRun, labelling_run_task)
register_job_kind(SignalsRun, signals_run_task)


@shared_task(bind=True, name="annotation.tasks.sample_action_task", **task_limits.ROUTING.options())
def sample_action_task(self: Task, job_id: int) -> None:
    """A bulk action of the samples page over more than annotation.samples.actions.INLINE_LIMIT samples."""
    from annotation.samples.actions import sample_action_job_run

    run_job(
        self,
        SampleActionJob.objects.select_related("project", "created_by"),
        job_id,
        lambda job: sample_action_job_run(job=job),
    )


register_job_kind(SampleActionJob, sample_action_task)
