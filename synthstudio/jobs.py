"""Background jobs: enqueueing, telling whether anyone will run them, and keeping every job row honest.

Each job row (a BackgroundJob subclass) is run by one Celery task, registered with `register_job_kind` next to
the task. The task body goes through `run_job`, which

- claims the row under a lease (`lease_holder` = pid@host, `attempts` + 1) in one compare-and-set UPDATE: a
  job that is queued, or running under a dead lease, is taken; a finished job, or one a live worker holds, is
  skipped — so a message delivered twice (acks_late + reject_on_worker_lost, a Redis visibility timeout, a
  Resume click) never runs a job twice at once;
- beats the row's heartbeat from a thread while the work runs, so phases that report no progress (a model
  load, a slow LLM call, a long transaction on PostgreSQL) still look alive;
- turns Celery's soft time limit (synthstudio.task_limits) into a failed job that says so.

`recover_stalled_jobs` is the one stall detector for every kind: a running job whose heartbeat is older than
JOB_STALL_SECONDS is queued again through its task (every kind resumes: imports restart inside their single
transaction, snapshots rebuild their reserved row, labelling and judge runs skip what they stored, generation
runs skip finished items), up to JOB_MAX_ATTEMPTS starts, then failed with a reason. Workers run it from their
heartbeat thread and pages from the worker-status poll, so no beat server is needed.

Why the lease holder's pid as well as the heartbeat: on SQLite a write transaction (an import writes all its
rows in one) locks the whole database, so nobody — not the heartbeat thread either — can write until it
commits. A job whose heartbeat is stale but whose process is alive on this host is therefore left alone, up to
its task's hard time limit (after which the process cannot legitimately still be running it).
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from synthstudio.models import BackgroundJob, JobStatus, WorkerHeartbeat
from synthstudio.task_limits import LONGEST_HARD_LIMIT, duration_text

logger = logging.getLogger(__name__)

ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def enqueue(task, *args) -> None:
    """Send a Celery task once the surrounding transaction commits (the row it reads must exist)."""
    transaction.on_commit(lambda: task.delay(*args))


def worker_alive() -> bool:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return True
    return WorkerHeartbeat.any_alive()


# ------------------------------------------------------------------------------------------ kinds of job


@dataclass(frozen=True)
class JobKind:
    """A job model and the task that runs it (called with the job's id)."""

    model: type[BackgroundJob]
    task: Task
    # Queue a failed job again when the generic reset is not enough (generation also resets failed items).
    retry: Callable[[Any], Any] | None = None
    # Whether a failed job can run again at all (a Label Studio import deletes its upload once it ended).
    can_retry: Callable[[Any], bool] | None = None

    @property
    def hard_limit(self) -> int:
        return int(self.task.time_limit or LONGEST_HARD_LIMIT)


_KINDS: dict[str, JobKind] = {}
_tasks_imported = False


def register_job_kind(
    model: type[BackgroundJob],
    task: Task,
    *,
    retry: Callable[[Any], Any] | None = None,
    can_retry: Callable[[Any], bool] | None = None,
) -> None:
    """Called by each app's tasks module: recovery and Retry find the task of a job row here (this app cannot
    import the apps above it)."""
    _KINDS[model._meta.label_lower] = JobKind(model, task, retry, can_retry)


def job_kinds() -> dict[str, JobKind]:
    """Every registered kind, keyed 'app.model'. Imports the tasks modules first: a web process has not
    necessarily imported them yet (Celery discovers them lazily)."""
    global _tasks_imported
    if not _tasks_imported:
        from synthstudio import celery_app

        celery_app.loader.import_default_modules()
        _tasks_imported = True
    return dict(_KINDS)


def job_kind_of(job: BackgroundJob) -> JobKind:
    return job_kinds()[job.job_kind]


# ------------------------------------------------------------------------------------------ leases


def lease_holder_name() -> str:
    """This process, as it is stored in `lease_holder`."""
    return f"{os.getpid()}@{socket.gethostname()}"[:255]


def process_alive_here(holder: str) -> bool:
    """True when `holder` names a live process on this host (False when it is elsewhere: we cannot tell)."""
    pid_text, _, host = holder.partition("@")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # a killed process nobody has reaped yet is still listed, as a zombie (Linux)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _last_sign_of_life(status_row: dict) -> datetime | None:
    return status_row["heartbeat_at"] or status_row["started_at"] or status_row["created_at"]


def _lease_is_live(kind: JobKind, row: dict, now: datetime) -> bool:
    """Whether a running job's lease still holds: a recent heartbeat, or (stale heartbeat) a holder process that
    is alive on this host and within its task's hard time limit."""
    if not row["lease_holder"]:
        return False  # nobody claimed it through a lease (set by hand, or a row older than leases)
    last = _last_sign_of_life(row)
    if last is None:
        return False
    silent = (now - last).total_seconds()
    if silent < settings.JOB_STALL_SECONDS:
        return True
    return silent < kind.hard_limit + settings.JOB_STALL_SECONDS and process_alive_here(row["lease_holder"])


LEASE_FIELDS = ("pk", "status", "lease_holder", "attempts", "heartbeat_at", "started_at", "created_at")


def _claim(kind: JobKind, job_id: int, holder: str) -> bool:
    """Take the job under this process's lease (compare-and-set on what was read); False when it is finished,
    held by a live lease, or gone."""
    row = kind.model.objects.filter(pk=job_id).values(*LEASE_FIELDS).first()
    if row is None or row["status"] in ENDED:
        return False
    if row["status"] == JobStatus.RUNNING and _lease_is_live(kind, row, timezone.now()):
        return False
    now = timezone.now()
    claimed = kind.model.objects.filter(
        pk=job_id, status=row["status"], lease_holder=row["lease_holder"], heartbeat_at=row["heartbeat_at"]
    ).update(status=JobStatus.RUNNING, lease_holder=holder, heartbeat_at=now, attempts=F("attempts") + 1)
    if claimed:
        kind.model.objects.filter(pk=job_id, started_at__isnull=True).update(started_at=now)
    return bool(claimed)


class _HeartbeatThread(threading.Thread):
    """Beats the job's heartbeat while the task body runs, with its own database connection."""

    def __init__(self, model: type[BackgroundJob], job_id: int, holder: str) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{model._meta.model_name}-{job_id}")
        self.model, self.job_id, self.holder = model, job_id, holder
        self.interval = max(0.5, settings.JOB_STALL_SECONDS / 4)
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                try:
                    self.model.objects.filter(
                        pk=self.job_id, status=JobStatus.RUNNING, lease_holder=self.holder
                    ).update(heartbeat_at=timezone.now())
                except DatabaseError:  # SQLite locked by the task's own transaction: the next beat retries
                    logger.debug("Could not beat %s %s", self.model.__name__, self.job_id, exc_info=True)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=1)  # a beat waiting on a lock finishes on its own; WHERE status=running guards it


# ------------------------------------------------------------------------------------------ running a job


def time_limit_reason(seconds: float) -> str:
    return (
        f"Stopped: the job took longer than {duration_text(seconds)}, its time limit. "
        "What it had finished is kept where the job can resume; Retry starts it again."
    )


# The soft time limit of the job this thread is running (run_job sets it around the service call).
_SOFT_LIMIT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "job_soft_time_limit", default=None
)


def failure_text(error: BaseException) -> str:
    """What a failed job's row says of `error`, for services that catch Exception to fail their job with a
    message. Celery's SoftTimeLimitExceeded is an Exception too: for it, the plain-words reason with the limit
    in force (set by run_job), in the same update that finishes the job. Why here and not reworded afterwards:
    a page (or a test) polling the row could read the bare exception name in between (the prefork worker test
    did, on PostgreSQL under load)."""
    if isinstance(error, SoftTimeLimitExceeded):
        return time_limit_reason(_SOFT_LIMIT.get() or 0)
    return f"{type(error).__name__}: {error}"


def run_job(task: Task, queryset: QuerySet, job_id: int, execute: Callable[[Any], Any]) -> None:
    """The body of every job task: claim the row, load it with `queryset`, run `execute(job)` while a thread
    beats the heartbeat, and leave the row finished whatever happens (a soft time limit, an exception, or a
    service that returned without finishing it)."""
    kind = job_kinds()[queryset.model._meta.label_lower]
    model = kind.model
    holder = lease_holder_name()
    if not _claim(kind, job_id, holder):
        logger.info("%s %s skipped: finished, held by a live worker, or deleted", model.__name__, job_id)
        return
    job = queryset.filter(pk=job_id).first()
    if job is None:
        return
    mine = model.objects.filter(pk=job_id, lease_holder=holder)
    in_worker = not (task.request.is_eager or task.request.called_directly)
    heartbeat = _HeartbeatThread(model, job_id, holder) if in_worker else None
    if heartbeat is not None:
        heartbeat.start()
    soft_limit = _soft_time_limit(task)
    limit_in_force = _SOFT_LIMIT.set(soft_limit)
    try:
        execute(job)
    except SoftTimeLimitExceeded:
        logger.warning("%s %s stopped at its soft time limit", model.__name__, job_id)
        mine.exclude(status__in=[JobStatus.SUCCEEDED, JobStatus.CANCELLED]).update(
            status=JobStatus.FAILED, error=time_limit_reason(soft_limit or 0), finished_at=timezone.now()
        )
        return
    except Exception as error:  # the row says what went wrong; the traceback goes to the worker log
        logger.exception("%s %s failed", model.__name__, job_id)
        mine.filter(status=JobStatus.RUNNING).update(
            status=JobStatus.FAILED, error=failure_text(error), finished_at=timezone.now()
        )
        return
    finally:
        _SOFT_LIMIT.reset(limit_in_force)
        if heartbeat is not None:
            heartbeat.stop()
    mine.filter(status=JobStatus.RUNNING).update(
        status=JobStatus.FAILED, finished_at=timezone.now(),
        error="The worker returned without finishing the job (a bug); Retry starts it again.",
    )  # fmt: skip


def _soft_time_limit(task: Task) -> float | None:
    """The soft limit in force: a per-message override (apply_async(soft_time_limit=…)) or the task's own."""
    limits = getattr(task.request, "timelimit", None) or (None, None)
    return limits[1] or task.soft_time_limit


# ------------------------------------------------------------------------------------------ recovery


@dataclass(frozen=True)
class Recovery:
    kind: str
    job_id: int
    requeued: bool  # False: failed (too many starts)


def recover_stalled_jobs(*, now: datetime | None = None) -> list[Recovery]:
    """Queue again (or, after JOB_MAX_ATTEMPTS starts, fail) every running job whose worker stopped beating.

    Safe to run anywhere at any time and from several processes at once: each change is a compare-and-set on
    the row as it was read, so one process wins and the others change nothing.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_STALL_SECONDS)
    recovered: list[Recovery] = []
    for label, kind in job_kinds().items():
        candidates = kind.model.objects.filter(status=JobStatus.RUNNING).exclude(heartbeat_at__gte=cutoff)
        for row in candidates.values(*LEASE_FIELDS):
            if _lease_is_live(kind, row, now):
                continue
            outcome = _recover(kind, row, now)
            if outcome is not None:
                recovered.append(Recovery(label, row["pk"], outcome))
    if recovered:
        logger.warning("Recovered stalled jobs: %s", recovered)
    return recovered


def _recover(kind: JobKind, row: dict, now: datetime) -> bool | None:
    """Requeue (True) or fail (False) one stalled job; None when another process changed it first."""
    seen = kind.model.objects.filter(
        pk=row["pk"],
        status=JobStatus.RUNNING,
        lease_holder=row["lease_holder"],
        heartbeat_at=row["heartbeat_at"],
    )
    silence = duration_text(settings.JOB_STALL_SECONDS)
    if row["attempts"] >= settings.JOB_MAX_ATTEMPTS:
        failed = seen.update(
            status=JobStatus.FAILED, finished_at=now, lease_holder="",
            error=(f"The worker running this job stopped {_times(row['attempts'])} (no heartbeat for {silence}), "
                   "so it was not started again. Retry starts it once more."),
        )  # fmt: skip
        return False if failed else None
    with transaction.atomic():
        requeued = seen.update(
            status=JobStatus.QUEUED, lease_holder="",
            message=(f"The worker running this job stopped (no heartbeat for {silence}); queued again "
                     f"(start {row['attempts'] + 1} of {settings.JOB_MAX_ATTEMPTS})."),
        )  # fmt: skip
        if requeued:
            enqueue(kind.task, row["pk"])
    return True if requeued else None


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


_last_recovery = 0.0
_recovery_lock = threading.Lock()


def recover_stalled_jobs_if_due() -> None:
    """recover_stalled_jobs at most every JOB_STALL_SECONDS / 4 per process: for callers that run often (the
    worker heartbeat thread, the worker-status poll of every page). Never raises: a failed look retries later."""
    global _last_recovery
    interval = max(1.0, settings.JOB_STALL_SECONDS / 4)
    with _recovery_lock:
        if time.monotonic() - _last_recovery < interval:
            return
        _last_recovery = time.monotonic()
    try:
        recover_stalled_jobs()
    except DatabaseError:
        logger.warning("Could not look for stalled jobs", exc_info=True)
        close_old_connections()


def job_resume(*, job: BackgroundJob) -> bool:
    """Send an unfinished job to a worker again (a Resume button): a queued job (its message may have been lost
    with a dead worker) or a running one whose lease is dead. A job a live worker holds is left alone; the
    claim in run_job settles any race. Returns whether a message was sent."""
    kind = job_kind_of(job)
    row = kind.model.objects.filter(pk=job.pk).values(*LEASE_FIELDS).first()
    if row is None or row["status"] in ENDED:
        return False
    if row["status"] == JobStatus.RUNNING and _lease_is_live(kind, row, timezone.now()):
        return False
    enqueue(kind.task, job.pk)
    return True


# ------------------------------------------------------------------------------------------ retry


class JobNotRetryable(Exception):
    """Said to the lead instead of retrying."""


def job_retry(*, job: BackgroundJob) -> BackgroundJob:
    """Queue a failed job again through its task: status, progress, error and attempts start over."""
    kind = job_kind_of(job)
    if job.status != JobStatus.FAILED:
        raise JobNotRetryable("Only a failed job can be retried.")
    if kind.can_retry is not None and not kind.can_retry(job):
        raise JobNotRetryable("This job cannot run again (its input is gone): start a new one.")
    with transaction.atomic():
        reset = kind.model.objects.filter(pk=job.pk, status=JobStatus.FAILED).update(
            status=JobStatus.QUEUED, done=0, failed=0, error="", message="Queued again by a lead.",
            finished_at=None, heartbeat_at=None, lease_holder="", attempts=0,
        )  # fmt: skip
        if reset:
            if kind.retry is not None:
                job.refresh_from_db()
                kind.retry(job)
            else:
                enqueue(kind.task, job.pk)
    job.refresh_from_db()
    return job
