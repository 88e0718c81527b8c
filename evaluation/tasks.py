"""Celery tasks of evaluation: take ids, load the row, call a service. Re-delivery is safe: finished jobs are
skipped, judge runs resume from the results they stored, and a metrics refresh simply recomputes."""

from __future__ import annotations

from celery import shared_task

from . import judges, metrics_services
from .models import BenchmarkRun, JudgeRun, MetricsRefresh


@shared_task
def metrics_refresh_task(job_id: int) -> None:
    job = MetricsRefresh.objects.select_related("project").filter(pk=job_id).first()
    if job is not None and not job.is_finished:
        metrics_services.metrics_refresh_run(job=job)


@shared_task
def benchmark_run_task(run_id: int) -> None:
    run = BenchmarkRun.objects.select_related("project").filter(pk=run_id).first()
    if run is not None and not run.is_finished:
        metrics_services.benchmark_run(run=run)


@shared_task
def judge_run_task(run_id: int) -> None:
    run = JudgeRun.objects.select_related("project", "endpoint").filter(pk=run_id).first()
    if run is not None and not run.is_finished:
        judges.judge_run_execute(run=run)
