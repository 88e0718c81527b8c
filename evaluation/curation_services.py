"""Curation workflows: student-model runs, export jobs and API tokens (snapshots live in snapshots.py)."""

from __future__ import annotations

import hashlib
import secrets
import traceback

from django.db import transaction
from django.utils import timezone

from annotation.refinement_services import label_issues_compute, label_issues_send_to_review
from synthstudio.jobs import enqueue
from synthstudio.models import JobStatus, Project

from .export import export_file, export_path
from .models import ApiToken, ExportJob, RefinementRun, Snapshot

TOKEN_PREFIX = "ssk_"


def refinement_run_start(*, project: Project, user) -> RefinementRun:
    from .curation_tasks import refinement_run_task

    with transaction.atomic():
        run = RefinementRun.objects.create(project=project, created_by=user, total=1)
        enqueue(refinement_run_task, run.pk)
    return run


def refinement_run_execute(*, run: RefinementRun) -> RefinementRun:
    run.mark_running()
    try:
        result = label_issues_compute(
            project=run.project,
            progress=lambda message: RefinementRun.objects.filter(pk=run.pk).update(message=message, heartbeat_at=timezone.now()),
        )
    except Exception as error:  # the page shows the error; the traceback goes to the worker log
        traceback.print_exc()
        run.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
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
    return label_issues_send_to_review(project=run.project, issues=run.result.get("issues", []), sample_ids=sample_ids)


def export_job_start(*, snapshot: Snapshot, file_format: str, user) -> ExportJob:
    """A worker job writing the export file; an already written file is reused at once."""
    existing = ExportJob.objects.filter(snapshot=snapshot, file_format=file_format).exclude(status=JobStatus.FAILED).first()
    if existing is not None and (not existing.is_finished or export_path(snapshot, file_format).exists()):
        return existing
    from .curation_tasks import export_job_task

    with transaction.atomic():
        job = ExportJob.objects.create(
            project=snapshot.project, created_by=user, snapshot=snapshot, file_format=file_format,
            total=snapshot.item_count,
        )
        enqueue(export_job_task, job.pk)
    return job


def export_job_execute(*, job: ExportJob) -> ExportJob:
    job.mark_running()
    try:
        path = export_file(job.snapshot, job.file_format, progress=lambda written: job.report_progress(done=written))
    except Exception as error:
        traceback.print_exc()
        job.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
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
    token = ApiToken.objects.create(user=user, name=name or "token", prefix=raw[:10], token_hash=token_hash(raw))
    return token, raw


def api_token_revoke(*, user, token_id: int) -> bool:
    return bool(ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True).update(revoked_at=timezone.now()))


def api_token_user(*, raw: str):
    """The active user owning this token, or None."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.active().select_related("user").filter(token_hash=token_hash(raw)).first()
    if token is None or not token.user.is_active:
        return None
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user
