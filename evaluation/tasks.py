"""Celery tasks of evaluation (dashboards, benchmark, judges, curation, export): take ids, load the row, call a
service. Names are pinned (queued messages name them; curation's keep their old module in the name) and limits
come from synthstudio.task_limits. Re-delivery is safe: synthstudio.jobs.run_job skips a job that finished or
that a live worker holds, judge runs resume from the results they stored, a metrics refresh or benchmark simply
recomputes, an export whose file exists is not written again (snapshots never change), a snapshot build re-run
after a crash rebuilds the hidden row it reserved, and a Label Studio import commits together with its job's
success (so it never lands twice).

One import direction (HackSoft): services import this module to enqueue, so each task imports the service it
calls inside its body."""

from __future__ import annotations

from pathlib import Path

from celery import Task, shared_task

from evaluation.models import (
    BenchmarkRun,
    ExportJob,
    JudgeRun,
    LabelStudioImportJob,
    MetricsRefresh,
    RefinementRun,
    SnapshotJob,
)
from synthstudio import task_limits
from synthstudio.jobs import register_job_kind, run_job


@shared_task(bind=True, name="evaluation.tasks.metrics_refresh_task", **task_limits.METRICS.options())
def metrics_refresh_task(self: Task, job_id: int) -> None:
    from evaluation.dashboards.services import metrics_refresh_run

    run_job(
        self,
        MetricsRefresh.objects.select_related("project"),
        job_id,
        lambda job: metrics_refresh_run(job=job),
    )


@shared_task(bind=True, name="evaluation.tasks.benchmark_run_task", **task_limits.BENCHMARK.options())
def benchmark_run_task(self: Task, run_id: int) -> None:
    from evaluation.benchmark.services import benchmark_run

    run_job(self, BenchmarkRun.objects.select_related("project"), run_id, lambda run: benchmark_run(run=run))


@shared_task(bind=True, name="evaluation.tasks.judge_run_task", **task_limits.JUDGE.options())
def judge_run_task(self: Task, run_id: int) -> None:
    from evaluation.preferences.judges import judge_run_execute

    run_job(
        self,
        JudgeRun.objects.select_related("project", "endpoint"),
        run_id,
        lambda run: judge_run_execute(run=run),
    )


register_job_kind(MetricsRefresh, metrics_refresh_task)
register_job_kind(BenchmarkRun, benchmark_run_task)
register_job_kind(JudgeRun, judge_run_task)


@shared_task(
    bind=True, name="evaluation.curation_tasks.refinement_run_task", **task_limits.REFINEMENT.options()
)
def refinement_run_task(self: Task, run_id: int) -> None:
    from evaluation.curation.services import refinement_run_execute

    run_job(
        self,
        RefinementRun.objects.select_related("project"),
        run_id,
        lambda run: refinement_run_execute(run=run),
    )


@shared_task(bind=True, name="evaluation.curation_tasks.export_job_task", **task_limits.EXPORT.options())
def export_job_task(self: Task, job_id: int) -> None:
    from evaluation.curation.services import export_job_execute

    run_job(
        self,
        ExportJob.objects.select_related("snapshot__project"),
        job_id,
        lambda job: export_job_execute(job=job),
    )


@shared_task(bind=True, name="evaluation.curation_tasks.snapshot_job_task", **task_limits.SNAPSHOT.options())
def snapshot_job_task(self: Task, job_id: int) -> None:
    from evaluation.curation.services import snapshot_job_execute

    run_job(
        self,
        SnapshotJob.objects.select_related("project", "snapshot", "created_by"),
        job_id,
        lambda job: snapshot_job_execute(job=job),
    )


@shared_task(
    bind=True,
    name="evaluation.curation_tasks.labelstudio_import_task",
    **task_limits.LABELSTUDIO_IMPORT.options(),
)
def labelstudio_import_task(self: Task, job_id: int) -> None:
    from evaluation.export.labelstudio import labelstudio_import_job_execute

    run_job(
        self,
        LabelStudioImportJob.objects.select_related("project"),
        job_id,
        lambda job: labelstudio_import_job_execute(job=job),
    )


register_job_kind(RefinementRun, refinement_run_task)
register_job_kind(ExportJob, export_job_task)
register_job_kind(SnapshotJob, snapshot_job_task)
# The upload is deleted once the import ended: a failed one can only be retried while the file is still there.
register_job_kind(
    LabelStudioImportJob, labelstudio_import_task, can_retry=lambda job: Path(job.stored_path).exists()
)
