"""Celery tasks of the generation app: take an id, call a service. Idempotent: a redelivered or repeated
task resumes the run and skips finished items."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(acks_late=True, name="generation.run")
def generation_run_task(run_id: int) -> None:
    services.run_execute(run_id=run_id)
