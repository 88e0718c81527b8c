"""Celery tasks of evaluation: take ids, load the row, call a service. Names are pinned (queued messages name
them) and limits come from synthstudio.task_limits. Re-delivery is safe: synthstudio.jobs.run_job skips a job
that finished or that a live worker holds, judge runs resume from the results they stored, and a metrics
refresh or benchmark simply recomputes."""

from __future__ import annotations

from celery import Task, shared_task

from synthstudio import task_limits
from synthstudio.jobs import register_job_kind, run_job

from . import judges, metrics_services
from .models import BenchmarkRun, JudgeRun, MetricsRefresh


@shared_task(bind=True, name="evaluation.tasks.metrics_refresh_task", **task_limits.METRICS.options())
def metrics_refresh_task(self: Task, job_id: int) -> None:
    run_job(
        self,
        MetricsRefresh.objects.select_related("project"),
        job_id,
        lambda job: metrics_services.metrics_refresh_run(job=job),
    )


@shared_task(bind=True, name="evaluation.tasks.benchmark_run_task", **task_limits.BENCHMARK.options())
def benchmark_run_task(self: Task, run_id: int) -> None:
    run_job(
        self,
        BenchmarkRun.objects.select_related("project"),
        run_id,
        lambda run: metrics_services.benchmark_run(run=run),
    )


@shared_task(bind=True, name="evaluation.tasks.judge_run_task", **task_limits.JUDGE.options())
def judge_run_task(self: Task, run_id: int) -> None:
    run_job(
        self,
        JudgeRun.objects.select_related("project", "endpoint"),
        run_id,
        lambda run: judges.judge_run_execute(run=run),
    )


register_job_kind(MetricsRefresh, metrics_refresh_task)
register_job_kind(BenchmarkRun, benchmark_run_task)
register_job_kind(JudgeRun, judge_run_task)
