"""Curation workflows: student-model runs, snapshot builds, export jobs and API tokens (the snapshot core
lives in snapshots.py; Label Studio imports in evaluation.export.labelstudio)."""

from __future__ import annotations

import hashlib
import secrets
import traceback
from pathlib import Path

from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from evaluation.curation.filters import FilterSettings, pattern_problems, unusable_rules_message
from evaluation.curation.label_issues import label_issues_compute, label_issues_send_to_review
from evaluation.curation.snapshots import snapshot_build, snapshot_mark_ready, snapshot_reserve
from evaluation.export.writers import export_file, export_path
from evaluation.models import (
    ApiToken,
    ExportFormat,
    ExportJob,
    RefinementRun,
    Snapshot,
    SnapshotJob,
)
from evaluation.tasks import export_job_task, refinement_run_task, snapshot_job_task
from synthstudio.jobs import enqueue, failure_text
from synthstudio.models import JobStatus, Project

TOKEN_PREFIX = "ssk_"


def refinement_run_start(*, project: Project, user) -> RefinementRun:
    with transaction.atomic():
        run = RefinementRun.objects.create(project=project, created_by=user, total=1)
        enqueue(refinement_run_task, run.pk)
    return run


def refinement_run_execute(*, run: RefinementRun) -> RefinementRun:
    run.mark_running()
    try:
        result = label_issues_compute(
            project=run.project,
            progress=lambda message: RefinementRun.objects.filter(pk=run.pk).update(
                message=message, heartbeat_at=timezone.now()
            ),
        )
    except Exception as error:  # the page shows the error; the traceback goes to the worker log
        traceback.print_exc()
        run.mark_finished(JobStatus.FAILED, error=failure_text(error))
        return run
    run.result = result
    run.save(update_fields=["result"])
    run.report_progress(done=1)
    message = result.get("message") or (
        f"{result['issue_count']} likely label errors among {result['items']} items "
        f"({result['clean']} clean, {result['noisy']} noisy by the FreeAL split)."
    )
    run.mark_finished(JobStatus.SUCCEEDED, message=message)
    return run


def label_issues_send(*, run: RefinementRun, sample_ids: list[int]) -> int:
    return label_issues_send_to_review(
        project=run.project, issues=run.result.get("issues", []), sample_ids=sample_ids
    )


def snapshot_job_start(
    *,
    project: Project,
    user,
    settings: FilterSettings,
    split_fractions: dict[str, float] | None = None,
    note: str = "",
    licence: str = "unknown",
    seed: int = 0,
) -> SnapshotJob:
    with transaction.atomic():
        job = SnapshotJob.objects.create(
            project=project,
            created_by=user,
            filter_settings=settings.as_dict(),
            split_fractions=split_fractions or {},
            note=note,
            licence=licence or "unknown",
            seed=seed,
            message="Waiting for a worker.",
        )
        enqueue(snapshot_job_task, job.pk)
    return job


def snapshot_job_execute(*, job: SnapshotJob) -> SnapshotJob:
    """Build the job's snapshot; safe to run again after a crash (the reserved row is emptied and rebuilt).
    Settings with a pattern RE2 refuses (queued before patterns ran on RE2) fail the job before a version
    number is taken, with a message saying which rule to fix."""
    job.mark_running()
    problems = pattern_problems(FilterSettings.from_dict(job.filter_settings))
    if problems:
        job.mark_finished(JobStatus.FAILED, error=unusable_rules_message(problems))
        return job
    try:
        with transaction.atomic():
            # the reservation and the job's link to it commit together: a re-run finds the row it reserved
            locked = (
                SnapshotJob.objects.select_for_update(of=("self",)).select_related("snapshot").get(pk=job.pk)
            )
            if locked.snapshot is None:
                locked.snapshot = snapshot_reserve(
                    project=job.project, user=job.created_by, note=job.note, licence=job.licence
                )
                locked.save(update_fields=["snapshot"])
            job.snapshot = locked.snapshot
        snapshot_build(
            snapshot=job.snapshot,
            settings=FilterSettings.from_dict(job.filter_settings),
            split_fractions=job.split_fractions,
            seed=job.seed,
            progress=lambda done, total: job.report_progress(done=done, total=total),
            stage=lambda text: SnapshotJob.objects.filter(pk=job.pk).update(
                message=text, heartbeat_at=timezone.now()
            ),
        )
    except Exception as error:  # the page shows the error; the traceback goes to the worker log
        traceback.print_exc()
        if job.snapshot is not None:  # give the version number back: the row was never shown
            Snapshot.objects.filter(pk=job.snapshot.pk, is_ready=False).delete()
            job.snapshot = None
        job.mark_finished(JobStatus.FAILED, error=failure_text(error))
        return job
    with transaction.atomic():
        snapshot_mark_ready(job.snapshot)
        job.mark_finished(
            JobStatus.SUCCEEDED,
            message=f"Snapshot v{job.snapshot.version} saved with {job.snapshot.item_count} items.",
        )
    return job


def export_job_start(*, snapshot: Snapshot, file_format: str, user) -> ExportJob:
    """A worker job writing the export file; an already written file is reused at once."""
    existing = (
        ExportJob.objects.filter(snapshot=snapshot, file_format=file_format)
        .exclude(status=JobStatus.FAILED)
        .first()
    )
    if existing is not None and (not existing.is_finished or export_path(snapshot, file_format).exists()):
        return existing
    with transaction.atomic():
        job = ExportJob.objects.create(
            project=snapshot.project,
            created_by=user,
            snapshot=snapshot,
            file_format=file_format,
            total=snapshot.item_count,
        )
        enqueue(export_job_task, job.pk)
    return job


def export_job_execute(*, job: ExportJob) -> ExportJob:
    job.mark_running()
    try:
        path = export_file(
            job.snapshot, job.file_format, progress=lambda written: job.report_progress(done=written)
        )
    except Exception as error:
        traceback.print_exc()
        job.mark_finished(JobStatus.FAILED, error=failure_text(error))
        return job
    job.file_path = str(path)
    job.done = job.total
    job.save(update_fields=["file_path", "done"])
    job.mark_finished(JobStatus.SUCCEEDED, message=f"{job.snapshot.item_count} rows written.")
    return job


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token; the raw value is returned once and only its hash is stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name or "token", prefix=raw[:10], token_hash=token_hash(raw)
    )
    return token, raw


def api_token_revoke(*, user, token_id: int) -> bool:
    return bool(
        ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def api_token_user(*, raw: str):
    """The active user owning this token, or None."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.active().select_related("user").filter(token_hash=token_hash(raw)).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


def export_files_unreferenced(*, older_than_days: float) -> list[Path]:
    """Files under MEDIA_ROOT/exports/ that no snapshot owns any more (its row deleted, or a database reset
    reused its id: the name carries the creation time), plus temp files a dead writer left, last modified
    more than `older_than_days` ago. Files of existing snapshots are kept: they are reused on download."""
    root = Path(django_settings.MEDIA_ROOT) / "exports"
    if not root.exists():
        return []
    cutoff = timezone.now().timestamp() - older_than_days * 86400
    candidates = [path for path in root.rglob("*") if path.is_file() and path.stat().st_mtime < cutoff]
    if not candidates:
        return []
    referenced = {
        export_path(snapshot, file_format)
        for snapshot in Snapshot.objects.only("pk", "project_id", "created_at").iterator()
        for file_format in ExportFormat.values
    }
    return sorted(path for path in candidates if path not in referenced)


def export_files_prune(*, older_than_days: float) -> list[Path]:
    """Delete the unreferenced export files; returns what was deleted."""
    removed = []
    for path in export_files_unreferenced(older_than_days=older_than_days):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
