"""The review queue itself: routing samples into it, reservations (claiming, expiry), the annotator's next
item, and the gold checks mixed into it (with the gold rate that sets how often).

Concurrency. Every ReviewTask has `claimed_count` (live reservations + answers). A reservation is taken by a
conditional UPDATE (`claimed_count < required_answers`, ReviewTaskQuerySet.take_slot) inside a transaction, plus
the unique (task, annotator) constraint on Assignment, so an item never goes to more annotators than its overlap
and never twice to one annotator. On PostgreSQL the candidate row is picked with `SELECT ... FOR UPDATE SKIP
LOCKED`, so concurrent annotators take different items instead of queueing on the same row. On SQLite the
settings open every transaction with BEGIN IMMEDIATE (a write lock up front), so the read-check-write sequence is
serialised; the conditional UPDATE keeps it correct even without that.

`ReviewError` and `write_transaction` are shared by the other modules of annotation.review.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotation.models import REOPENABLE, Assignment, AssignmentStatus, ReviewSettings, ReviewTask, TaskKind
from annotation.review import stats as review_stats
from synthstudio.models import Codebook, Project

DEFAULT_GOLD_RATE = 0.1
CLAIM_ATTEMPTS = 8
EXPIRY_SWEEP_SECONDS = 10.0


class ReviewError(Exception):
    """A request the queue refuses; the message is meant for the person who made it."""


_SQLITE_WRITERS = threading.RLock()


@contextmanager
def write_transaction() -> Iterator[None]:
    """A transaction of the queue. SQLite has one writer at a time and its busy handler polls with growing
    sleeps, so under load a waiting thread can keep missing the lock past the busy timeout ("database is
    locked"). On SQLite the threads of one process therefore queue on a lock here first, and only one
    connection per process competes for the database's write lock. PostgreSQL locks rows: no queue."""
    if connection.vendor == "sqlite":
        with _SQLITE_WRITERS, transaction.atomic():
            yield
    else:
        with transaction.atomic():
            yield


# --------------------------------------------------------------------------------------------- creating tasks


def review_tasks_create(
    *,
    project: Project,
    samples_with_reasons: list[tuple],
    kind: str = TaskKind.ROUTED,
    required_answers: int = 1,
    strategy: str = "",
    batch: int = 0,
) -> list[ReviewTask]:
    """Route samples into the queue. Items are (sample, reason) or (sample, reason, priority); samples that
    already wait in an open task are left alone."""
    waiting = set(
        ReviewTask.objects.filter(project=project, is_open=True).values_list("sample_id", flat=True)
    )
    tasks = []
    for item in samples_with_reasons:
        sample, reason = item[0], item[1]
        priority = float(item[2]) if len(item) > 2 else 0.0
        if sample.project_id != project.id:
            raise ReviewError(f"Sample {sample.pk} belongs to another project.")
        if sample.pk in waiting:
            continue
        waiting.add(sample.pk)
        tasks.append(
            ReviewTask(
                project=project,
                sample=sample,
                kind=kind,
                priority=priority,
                reason=reason[:300],
                strategy=strategy,
                batch=batch,
                required_answers=max(1, int(required_answers)),
            )
        )
    return ReviewTask.objects.bulk_create(tasks)


# ---------------------------------------------------------------------------------------------- the queue


def review_reservations_expire(*, project: Project) -> int:
    """Return stale reservations' slots to the queue. Returns how many expired."""
    stale = list(
        Assignment.objects.filter(
            project=project, status=AssignmentStatus.RESERVED, expires_at__lte=timezone.now()
        ).values_list("pk", "task_id")
    )
    expired = 0
    for assignment_id, task_id in stale:
        with write_transaction():
            if Assignment.objects.filter(pk=assignment_id, status=AssignmentStatus.RESERVED).update(
                status=AssignmentStatus.EXPIRED
            ):
                ReviewTask.objects.filter(pk=task_id).give_back_slot()
                expired += 1
    return expired


def review_item(
    *, project: Project, assignment_id: int, annotator=None, codebook: Codebook | None = None
) -> Assignment | None:
    """One of the project's assignments — only the annotator's own when `annotator` is given — with its task and
    sample, and two attributes the workbench and the answer need: `llm_suggestion` (the sample's current LLM
    label: what the annotator is shown, and what their answer is compared with) and `current_codebook` (the
    project's newest codebook version; pass `codebook` when the request has just read it)."""
    assignments = Assignment.objects.filter(pk=assignment_id, project=project).select_related("task__sample")
    if annotator is not None:
        assignments = assignments.filter(annotator=annotator)
    assignment = assignments.first()
    return None if assignment is None else _shown_with(assignment, project=project, codebook=codebook)


def _shown_with(assignment: Assignment, *, project: Project, codebook: Codebook | None) -> Assignment:
    """Add what the workbench shows beside the item (see review_item) to an assignment loaded with its sample."""
    assignment.task.project = project
    assignment.llm_suggestion = assignment.task.sample.current_llm_annotation()
    assignment.current_codebook = codebook if codebook is not None else project.codebook
    return assignment


def review_next(*, project: Project, annotator, codebook: Codebook | None = None) -> Assignment | None:
    """The annotator's current reservation, or a newly reserved highest-priority item they have not answered
    or skipped (a gold check when one is due). None when nothing is left for them. The result is loaded like
    review_item's.

    Stale reservations are swept every EXPIRY_SWEEP_SECONDS per process, and always before saying "nothing
    left", so an expired item is back in the queue within seconds without a sweep query on every request."""
    if _expiry_sweep_due(project.pk):
        review_reservations_expire(project=project)
    assignment = _reserve(project, annotator)
    if assignment is None and review_reservations_expire(project=project):
        assignment = _reserve(project, annotator)
    return None if assignment is None else _shown_with(assignment, project=project, codebook=codebook)


_last_expiry_sweep: dict[int, float] = {}


def _expiry_sweep_due(project_id: int) -> bool:
    now = time.monotonic()
    if now - _last_expiry_sweep.get(project_id, float("-inf")) < EXPIRY_SWEEP_SECONDS:
        return False
    _last_expiry_sweep[project_id] = now
    return True


def _reserve(project: Project, annotator) -> Assignment | None:
    """The annotator's newest live reservation (a reload, or an undone answer), else a new claim: a gold check
    first when one is due, then the regular queue; with its task and sample. A lost race (another annotator took
    the last slot, or this annotator claimed the same task in another tab) is retried with the next candidate."""
    live_id = Assignment.objects.live_for(annotator, project).values_list("pk", flat=True).first()
    if live_id is not None:  # rare after an answer: the common path pays for the id only
        return Assignment.objects.select_related("task__sample").get(pk=live_id)
    pools = [True, False] if _gold_is_due(project, annotator) else [False]
    for gold in pools:
        for _ in range(CLAIM_ATTEMPTS):
            try:
                with write_transaction():
                    task = _candidate(project, annotator, gold=gold)
                    if task is None:
                        break
                    return _claim(
                        task=task,
                        gold=gold,
                        reopen=bool(task.own_status),
                        project=project,
                        annotator=annotator,
                    )
            except (_ClaimLost, IntegrityError):
                continue  # the transaction is rolled back: no slot was taken
    return None


def _candidate(project: Project, annotator, *, gold: bool) -> ReviewTask | None:
    """Inside a transaction: the task to claim, with its sample (and `own_status`, see claimable_by). On
    PostgreSQL the task row stays locked until the transaction ends, and rows that concurrent claims hold are
    skipped, so annotators claiming at once take different items instead of waiting for each other; SQLite
    ignores the lock (its IMMEDIATE transactions serialise writers)."""
    return (
        ReviewTask.objects.filter(project=project)
        .claimable_by(annotator, gold=gold)
        .select_related("sample")
        .select_for_update(skip_locked=True, of=("self",))
        .first()
    )


class _ClaimLost(Exception):
    """Another annotator took the task's last slot, or the annotator's own row changed meanwhile."""


def _claim(*, task: ReviewTask, gold: bool, reopen: bool, project: Project, annotator) -> Assignment:
    """Inside a transaction: take a slot of the task and reserve it for the annotator. `reopen`: the annotator
    has an expired or released row for the task, which is reserved again (one row per task and annotator).
    Raises _ClaimLost, or IntegrityError from the unique (task, annotator) constraint; either way the caller's
    transaction must roll back."""
    if not ReviewTask.objects.filter(pk=task.pk).take_slot(gold=gold):
        raise _ClaimLost
    task.claimed_count += 1
    now = timezone.now()
    expires_at = now + timedelta(minutes=project.reservation_minutes)
    if not reopen:
        return Assignment.objects.create(
            task=task, project=project, annotator=annotator, expires_at=expires_at
        )
    own_row = Assignment.objects.filter(task=task, annotator=annotator, status__in=REOPENABLE)
    if not own_row.update(
        status=AssignmentStatus.RESERVED, reserved_at=now, expires_at=expires_at, submission_id=""
    ):
        raise _ClaimLost
    assignment = Assignment.objects.get(task=task, annotator=annotator)
    assignment.task = task
    return assignment


def review_task_claim(*, task: ReviewTask, annotator) -> Assignment:
    """Inside a transaction: reserve a slot of `task` (loaded with its project) for `annotator`, reserving their
    expired or released row again if they have one. ReviewError when the task has no free slot."""
    reopen = Assignment.objects.filter(task=task, annotator=annotator).exists()
    try:
        return _claim(
            task=task,
            gold=task.kind == TaskKind.GOLD,
            reopen=reopen,
            project=task.project,
            annotator=annotator,
        )
    except _ClaimLost:
        raise ReviewError("The item has no free slot any more.") from None


# ------------------------------------------------------------------------------------------- gold mix-in


GOLD_RATE_CACHE_SECONDS = 10


def _gold_rate_cache_key(project: Project) -> str:
    return f"review-gold-rate:{project.pk}:{project.created_at.timestamp()}"


def review_gold_rate(project: Project) -> float:
    """The project's gold rate. Read on every "next", so it is cached; review_gold_rate_set refreshes the
    cache, and another process's cached value is at most GOLD_RATE_CACHE_SECONDS old."""
    key = _gold_rate_cache_key(project)
    rate = cache.get(key)
    if rate is None:
        rate = ReviewSettings.objects.filter(project=project).values_list("gold_rate", flat=True).first()
        rate = DEFAULT_GOLD_RATE if rate is None else rate
        cache.set(key, rate, GOLD_RATE_CACHE_SECONDS)
    return rate


def review_gold_rate_set(*, project: Project, gold_rate: float) -> ReviewSettings:
    if not 0.0 <= gold_rate <= 1.0:
        raise ReviewError("The gold rate is a share between 0 and 1.")
    row, _ = ReviewSettings.objects.update_or_create(project=project, defaults={"gold_rate": gold_rate})
    key = _gold_rate_cache_key(project)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))  # in case a reader cached the old rate before the commit
    return row


def _gold_is_due(project: Project, annotator) -> bool:
    rate = review_gold_rate(project)
    if rate <= 0:
        return False
    answered = Assignment.objects.of_annotator(annotator, project).answered().count()
    return review_stats.gold_due(answered, rate)
