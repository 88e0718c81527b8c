"""Celery tasks of labelling and routing: take ids, load the row, call a service. Re-delivery is safe: the
services skip what is done (a labelling run skips samples it already labelled; a finished signals run is
not recomputed; the next routed batch is planned only while no routed item is open)."""

from __future__ import annotations

import logging

from celery import shared_task

from synthstudio.models import JobStatus, Project

from . import services
from .models import LabellingRun, SignalsRun

logger = logging.getLogger(__name__)


@shared_task
def labelling_run_task(run_id: int) -> None:
    run = LabellingRun.objects.select_related("project", "codebook").filter(pk=run_id).first()
    if run is not None:
        services.labelling_run_execute(run=run)


@shared_task
def signals_run_task(run_id: int) -> None:
    run = SignalsRun.objects.select_related("project").filter(pk=run_id).first()
    if run is None or run.is_finished:
        return
    try:
        services.signals_refresh(project=run.project, run=run)
    except Exception as error:  # the page shows the failure instead of a run stuck "running"
        logger.exception("signals run %s failed", run_id)
        run.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")


@shared_task
def routing_next_batch_task(project_id: int) -> None:
    """Queued by services.routing_after_answer once a routed batch is fully answered: plan and route the next."""
    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        services.routing_route_next_batch(project=project, only_when_answered=True)
