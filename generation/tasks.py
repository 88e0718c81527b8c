"""Celery tasks of the generation app: take an id, call a service. Idempotent: a redelivered or repeated
task resumes the run and skips finished items."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready

from . import services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, name="generation.run")
def generation_run_task(run_id: int) -> None:
    services.run_execute(run_id=run_id)


@worker_ready.connect
def resume_stalled_runs(sender=None, **kwargs) -> None:
    """A starting worker picks up runs whose worker died (no heartbeat for a minute)."""
    try:
        resumed = services.runs_resume_stalled()
    except Exception:  # never stop a worker from starting
        logger.exception("Could not look for stalled generation runs")
        return
    if resumed:
        logger.warning("Resumed stalled generation runs: %s", resumed)
