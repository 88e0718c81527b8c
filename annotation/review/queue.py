"""The human review queue: claiming items, answering, skipping, undo/edit, gold checks, adjudication.

Concurrency. Every ReviewTask has `claimed_count` (live reservations + answers). A reservation is taken by a
conditional UPDATE (`claimed_count < required_answers`, ReviewTaskQuerySet.take_slot) inside a transaction, plus
the unique (task, annotator) constraint on Assignment, so an item never goes to more annotators than its overlap
and never twice to one annotator. On PostgreSQL the candidate row is picked with `SELECT ... FOR UPDATE SKIP
LOCKED`, so concurrent annotators take different items instead of queueing on the same row. On SQLite the
settings open every transaction with BEGIN IMMEDIATE (a write lock up front), so the read-check-write sequence is
serialised; the conditional UPDATE keeps it correct even without that.

Answers. `review_answer_submit` is the one path a human answer takes. It locks the assignment row and is
idempotent: a second POST of the same form (double click, retry after a network error) finds the assignment
answered and returns the stored answer. It refreshes the sample's final label at once (so the sample joins the
human-verified demo pool), and calls the router's `routing_after_answer(project=...)` after commit.

Text corrections are kept as SampleTextVersion rows; Sample.text stays the original, because that is what
was generated and what the LLM labelled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotation.models import (
    REOPENABLE,
    Assignment,
    AssignmentStatus,
    GoldItem,
    ReviewSettings,
    ReviewTask,
    SampleTextVersion,
    TaskKind,
)
from annotation.review import stats as review_stats
from annotation.review.final_labels import final_label_lock, final_label_refresh, human_label_rows
from annotation.services import routing_after_answer
from synthstudio.models import (
    Codebook,
    FlagReason,
    HumanAnnotation,
    HumanSource,
    Label,
    Membership,
    Project,
    QualityRating,
    Sample,
)

logger = logging.getLogger(__name__)

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
                    return _claim(task=task, gold=gold, reopen=bool(task.own_status), project=project, annotator=annotator)
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
        return Assignment.objects.create(task=task, project=project, annotator=annotator, expires_at=expires_at)
    own_row = Assignment.objects.filter(task=task, annotator=annotator, status__in=REOPENABLE)
    if not own_row.update(status=AssignmentStatus.RESERVED, reserved_at=now, expires_at=expires_at, submission_id=""):
        raise _ClaimLost
    assignment = Assignment.objects.get(task=task, annotator=annotator)
    assignment.task = task
    return assignment


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


def _gold_is_due(project: Project, annotator) -> bool:
    rate = review_gold_rate(project)
    if rate <= 0:
        return False
    answered = Assignment.objects.of_annotator(annotator, project).answered().count()
    return review_stats.gold_due(answered, rate)


# -------------------------------------------------------------------------------------------- answering


def _validated(codebook: Codebook | None, *, label: str, rating: str, flag: str, flag_note: str) -> None:
    if codebook is None:
        raise ReviewError("This project has no codebook yet.")
    if label not in {known.name for known in codebook_labels(codebook)}:
        raise ReviewError(f"{label!r} is not a label of the codebook.")
    if rating and rating not in QualityRating.values:
        raise ReviewError(f"{rating!r} is not a rating (use A, B, C or D).")
    if flag and flag not in FlagReason.values:
        raise ReviewError(f"{flag!r} is not a flag reason.")
    if flag == FlagReason.OTHER and not flag_note.strip():
        raise ReviewError("Say why you flag it as 'other'.")


def codebook_labels(codebook: Codebook) -> tuple[Label, ...]:
    """The labels of a codebook version in their display order, read once per process."""
    return _labels_of_version(codebook.pk, codebook.created_at)


@lru_cache(maxsize=256)
def _labels_of_version(codebook_id: int, created_at: datetime) -> tuple[Label, ...]:
    """Versions never change (an edit writes a new version), so their labels are cached per process; the
    creation time in the key keeps a reused id (rolled-back test databases) apart."""
    return tuple(Label.objects.filter(codebook_id=codebook_id))


def _correction(sample: Sample, edited_text: str) -> str:
    """The corrected text, or "" when the form sent the text back unchanged."""
    edited_text = edited_text.strip()
    return "" if edited_text == sample.text.strip() else edited_text


def _routing_after_answer(project: Project) -> None:
    """The router's hook, run after the answer is committed; a failure there is logged and never loses the
    answer (the router routes the next batch on the following answer)."""
    try:
        routing_after_answer(project=project)
    except Exception:
        logger.exception("routing_after_answer failed for project %s", project.pk)


def _text_version_add(*, sample: Sample, text: str, author_id: int | None, annotation: HumanAnnotation) -> SampleTextVersion | None:
    latest = sample.text_versions.order_by("-version").first()
    if text == (latest.text if latest else sample.text):
        return None
    return SampleTextVersion.objects.create(
        sample=sample, version=(latest.version + 1) if latest else 1, text=text, author_id=author_id, annotation=annotation
    )


def review_answer_submit(
    *,
    assignment: Assignment,
    label: str,
    rating: str = "",
    flag: str = "",
    flag_note: str = "",
    comment: str = "",
    edited_text: str = "",
    seconds_spent: float | None = None,
    submission_id: str = "",
    codebook: Codebook | None = None,
) -> HumanAnnotation:
    """Store the annotator's answer for their reservation: exactly once, whatever number of times it is sent.
    `codebook` is the project's current version when the caller has just read it (saves a query); the LLM label
    the answer is compared with is the one loaded with the assignment (review_item / review_next), i.e. the one
    the annotator was shown."""
    task = assignment.task
    project, sample = task.project, task.sample
    if codebook is None:
        codebook = project.codebook
    _validated(codebook, label=label, rating=rating, flag=flag, flag_note=flag_note)
    edited_text = _correction(sample, edited_text)
    if hasattr(assignment, "llm_suggestion"):
        llm = assignment.llm_suggestion
    else:
        llm = sample.current_llm_annotation()
    now = timezone.now()
    answer = HumanAnnotation(
        sample=sample,
        annotator_id=assignment.annotator_id,
        codebook=codebook,
        source=HumanSource.REVIEW,
        label=label,
        rating=rating,
        flag=flag,
        flag_note=flag_note.strip() if flag else "",
        comment=comment.strip(),
        edited_text=edited_text,
        agreed_with_llm=None if llm is None else llm.label == label,
    )
    store = dict(
        answer=answer, assignment=assignment, llm=llm, edited_text=edited_text, now=now,
        submission_id=submission_id[:64], client_seconds=seconds_spent,
    )
    try:
        with write_transaction():
            if not _answer_store(**store):
                raise _NotReserved  # rolls the answer back; the careful path below finds out why
    except _NotReserved:
        answer.pk, answer._state.adding = None, True
        with write_transaction():
            stored = _reservation_recover(assignment)
            if stored is not None:
                return stored  # the same answer sent again
            if not _answer_store(**store):
                raise ReviewError("This item is no longer reserved for you.") from None
    assignment.status, assignment.answer = AssignmentStatus.ANSWERED, answer
    return answer


class _NotReserved(Exception):
    """The assignment was not a live reservation when the answer came in."""


def _seconds_spent(client_seconds: float | None, reserved_at: datetime, now: datetime, project: Project) -> float:
    """The time the annotator spent, bounded by what the server saw since the reservation."""
    return review_stats.bounded_seconds(
        client_seconds, (now - reserved_at).total_seconds(), ceiling=project.reservation_minutes * 60.0
    )


def _answer_store(
    *,
    answer: HumanAnnotation,
    assignment: Assignment,
    llm,
    edited_text: str,
    now: datetime,
    submission_id: str,
    client_seconds: float | None,
) -> bool:
    """Inside a transaction: insert the answer, mark the reservation answered (only if it is still the
    reservation the annotator was shown — False otherwise, and the caller rolls back), count it on the task, keep
    a corrected text as a version and refresh the final label. The router hears about it after commit."""
    task, project = assignment.task, assignment.task.project
    final_label_lock(sample_id=task.sample_id)  # first: answers to this item now queue here until we commit
    answer.seconds_spent = _seconds_spent(client_seconds, assignment.reserved_at, now, project)
    answer.save(force_insert=True)
    recorded = Assignment.objects.filter(
        pk=assignment.pk, status=AssignmentStatus.RESERVED, reserved_at=assignment.reserved_at
    ).update(status=AssignmentStatus.ANSWERED, answered_at=now, answer=answer, submission_id=submission_id)
    if not recorded:
        return False
    ReviewTask.objects.filter(pk=task.pk).count_answer()
    if edited_text:
        _text_version_add(sample=task.sample, text=edited_text, author_id=assignment.annotator_id, annotation=answer)
    final_label_refresh(sample=task.sample, llm=llm, human_rows=human_label_rows(task.sample_id))
    transaction.on_commit(lambda: _routing_after_answer(project))
    return True


def _reservation_recover(assignment: Assignment) -> HumanAnnotation | None:
    """The careful path, inside a transaction, for an answer to a row that is not the live reservation it was
    read as: the stored answer when it was answered already (a double submit); a reservation renewed since it was
    read is answered with its stored reservation time (which bounds the time spent); an expired reservation is
    renewed if its slot is still free; otherwise ReviewError."""
    fresh = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if fresh.status == AssignmentStatus.ANSWERED and fresh.answer_id:
        return fresh.answer
    if fresh.status == AssignmentStatus.RESERVED and fresh.reserved_at != assignment.reserved_at:
        assignment.reserved_at = fresh.reserved_at
        return None
    if fresh.status == AssignmentStatus.EXPIRED:
        # Late but welcome if the slot is still free.
        if not ReviewTask.objects.filter(pk=fresh.task_id).take_slot(gold=assignment.task.kind == TaskKind.GOLD):
            raise ReviewError("Your reservation expired and the item went to someone else.")
        Assignment.objects.filter(pk=fresh.pk).update(status=AssignmentStatus.RESERVED)
        assignment.reserved_at = fresh.reserved_at
        return None
    raise ReviewError("This item is no longer reserved for you.")


def review_skip(*, assignment: Assignment, reason: str) -> None:
    """Give the item back to the others; it never comes back to this annotator."""
    reason = reason.strip()
    if not reason:
        raise ReviewError("Say why you skip it.")
    with write_transaction():
        if Assignment.objects.filter(pk=assignment.pk, status=AssignmentStatus.RESERVED).update(
            status=AssignmentStatus.SKIPPED, skip_reason=reason[:300]
        ):
            ReviewTask.objects.filter(pk=assignment.task_id).give_back_slot()
        elif not Assignment.objects.filter(pk=assignment.pk, status=AssignmentStatus.EXPIRED).update(
            status=AssignmentStatus.SKIPPED, skip_reason=reason[:300]
        ):
            raise ReviewError("Only an item reserved for you can be skipped.")


def review_answer_undo(*, project: Project, annotator) -> Assignment | None:
    """Take back the annotator's last answer: the answer is deleted and the item is reserved for them again,
    so it is the next item they see. None when there is nothing to undo."""
    last = (
        Assignment.objects.of_annotator(annotator, project).answered().select_related("task")
        .order_by("-answered_at", "-id").first()
    )
    if last is None:
        return None
    now = timezone.now()
    with write_transaction():
        final_label_lock(sample_id=last.task.sample_id)  # first, in the order an answer takes its locks
        fresh = Assignment.objects.select_for_update(of=("self",)).select_related("task__sample").get(pk=last.pk)
        if fresh.status != AssignmentStatus.ANSWERED:
            return None
        answer_id = fresh.answer_id
        Assignment.objects.filter(pk=fresh.pk).update(
            status=AssignmentStatus.RESERVED,
            answer=None,
            answered_at=None,
            reserved_at=now,
            expires_at=now + timedelta(minutes=project.reservation_minutes),
            submission_id="",
        )
        if answer_id:
            SampleTextVersion.objects.filter(annotation_id=answer_id).delete()
            HumanAnnotation.objects.filter(pk=answer_id).delete()
        ReviewTask.objects.filter(pk=fresh.task_id).uncount_answer()
        final_label_refresh(sample=fresh.task.sample)
        transaction.on_commit(lambda: _routing_after_answer(project))
    fresh.refresh_from_db()
    return fresh


def review_answer_edit(
    *,
    assignment: Assignment,
    label: str,
    rating: str = "",
    flag: str = "",
    flag_note: str = "",
    comment: str = "",
    edited_text: str = "",
) -> HumanAnnotation:
    """Change one's own earlier answer in place; a changed text adds a new text version."""
    task = ReviewTask.objects.select_related("project", "sample").get(pk=assignment.task_id)
    project, sample = task.project, task.sample
    _validated(project.codebook, label=label, rating=rating, flag=flag, flag_note=flag_note)
    if assignment.status != AssignmentStatus.ANSWERED or assignment.answer_id is None:
        raise ReviewError("Only an answered item can be edited.")
    edited_text = _correction(sample, edited_text)
    with write_transaction():
        annotation = HumanAnnotation.objects.select_for_update().get(pk=assignment.answer_id)
        llm = sample.current_llm_annotation()
        llm_label = llm.label if llm is not None else None
        annotation.label, annotation.rating, annotation.flag = label, rating, flag
        annotation.flag_note = flag_note.strip() if flag else ""
        annotation.comment = comment.strip()
        annotation.agreed_with_llm = None if llm_label is None else llm_label == label
        if edited_text:
            annotation.edited_text = edited_text
            _text_version_add(sample=sample, text=edited_text, author_id=assignment.annotator_id, annotation=annotation)
        annotation.save()
        final_label_refresh(sample=sample)
        transaction.on_commit(lambda: _routing_after_answer(project))
    return annotation


# ------------------------------------------------------------------------------------------ lead actions


def review_assignment_release(*, assignment: Assignment) -> bool:
    """A lead takes a reservation away; the item returns to the queue (and may come back to that annotator)."""
    with write_transaction():
        released = Assignment.objects.filter(pk=assignment.pk, status=AssignmentStatus.RESERVED).update(
            status=AssignmentStatus.RELEASED
        )
        if released:
            ReviewTask.objects.filter(pk=assignment.task_id).give_back_slot()
    return bool(released)


def review_assignment_reassign(*, assignment: Assignment, annotator) -> Assignment:
    """Move a reservation to another member of the project."""
    task = ReviewTask.objects.select_related("project").get(pk=assignment.task_id)
    if not Membership.objects.filter(project=task.project, user=annotator).exists():
        raise ReviewError(f"{annotator} is not a member of this project.")
    if Assignment.objects.filter(task=task, annotator=annotator).taken().exists():
        raise ReviewError(f"{annotator} already has this item.")
    with write_transaction():
        if not review_assignment_release(assignment=assignment):
            raise ReviewError("That reservation is no longer live.")
        reopen = Assignment.objects.filter(task=task, annotator=annotator).exists()  # expired or released: see above
        try:
            return _claim(
                task=task, gold=task.kind == TaskKind.GOLD, reopen=reopen, project=task.project, annotator=annotator
            )
        except _ClaimLost:
            raise ReviewError("The item has no free slot any more.") from None


def gold_item_mark(*, project: Project, sample: Sample, label: str, user, note: str = "") -> GoldItem:
    """Mark a sample as a gold item with its known label and put it into the gold mix."""
    if sample.project_id != project.id:
        raise ReviewError("That sample belongs to another project.")
    codebook = project.codebook
    if codebook is None or label not in codebook.label_names:
        raise ReviewError(f"{label!r} is not a label of the codebook.")
    with write_transaction():
        gold, _ = GoldItem.objects.update_or_create(
            sample=sample, defaults={"project": project, "label": label, "note": note.strip(), "created_by": user}
        )
        if not ReviewTask.objects.filter(sample=sample, kind=TaskKind.GOLD, is_open=True).exists():
            ReviewTask.objects.create(
                project=project, sample=sample, kind=TaskKind.GOLD, reason="gold check", strategy="gold"
            )
    return gold


def gold_item_remove(*, gold_item: GoldItem) -> None:
    with write_transaction():
        ReviewTask.objects.filter(sample_id=gold_item.sample_id, kind=TaskKind.GOLD).update(is_open=False)
        gold_item.delete()


def review_gold_rate_set(*, project: Project, gold_rate: float) -> ReviewSettings:
    if not 0.0 <= gold_rate <= 1.0:
        raise ReviewError("The gold rate is a share between 0 and 1.")
    row, _ = ReviewSettings.objects.update_or_create(project=project, defaults={"gold_rate": gold_rate})
    key = _gold_rate_cache_key(project)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))  # in case a reader cached the old rate before the commit
    return row


def adjudication_record(*, sample: Sample, label: str, note: str, user) -> HumanAnnotation:
    """A lead settles a disagreement: an adjudication annotation with a note, then the final label follows it."""
    project = sample.project
    _validated(project.codebook, label=label, rating="", flag="", flag_note="")
    with write_transaction():
        annotation = HumanAnnotation.objects.create(
            sample=sample,
            annotator=user,
            codebook=project.codebook,
            source=HumanSource.ADJUDICATION,
            label=label,
            comment=note.strip(),
        )
        final_label_refresh(sample=sample)
        transaction.on_commit(lambda: _routing_after_answer(project))
    return annotation


# ------------------------------------------------------------------------------------------------ reading


@dataclass
class Progress:
    done_today: int
    remaining: int
    streak_days: int
    total_answered: int

    @property
    def remaining_capped(self) -> bool:
        return self.remaining >= REMAINING_COUNT_CAP


# "100+ left" says enough; counting further cost ~0.4 ms of database time on every answer (bench_review)
REMAINING_COUNT_CAP = 100
PAST_DAYS_CACHE_SECONDS = 600


def _today_start() -> datetime:
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def review_progress(*, project: Project, annotator) -> Progress:
    """Done today, items left for this annotator (counted up to REMAINING_COUNT_CAP), streak in days."""
    today = timezone.localdate()
    today_start = _today_start()
    answers = Assignment.objects.of_annotator(annotator, project).answered()
    counts = answers.aggregate(total=Count("id"), today=Count("id", filter=Q(answered_at__gte=today_start)))
    remaining = (
        ReviewTask.objects.filter(project=project).claimable_by(annotator, gold=False)[:REMAINING_COUNT_CAP].count()
    )
    # Days before today do not change during the day: cached, so a render costs no streak query.
    cache_key = f"review-past-days:{project.pk}:{project.created_at.timestamp()}:{annotator.pk}:{today}"
    past_days = cache.get(cache_key)
    if past_days is None:
        past_days = set(
            answers.filter(answered_at__gte=today_start - timedelta(days=90), answered_at__lt=today_start)
            .annotate(day=TruncDate("answered_at"))
            .values_list("day", flat=True)
            .distinct()
        )
        cache.set(cache_key, past_days, PAST_DAYS_CACHE_SECONDS)
    answer_days = past_days | {today} if counts["today"] else past_days
    return Progress(
        done_today=counts["today"],
        remaining=remaining,
        streak_days=review_stats.day_streak(answer_days, today),
        total_answered=counts["total"],
    )


def review_history(*, project: Project, annotator, limit: int = 30) -> list[Assignment]:
    return list(
        Assignment.objects.filter(task__project=project, annotator=annotator, status=AssignmentStatus.ANSWERED)
        .select_related("task__sample", "answer")
        .order_by("-answered_at", "-id")[:limit]
    )


@dataclass
class AnnotatorRow:
    user_id: int
    username: str
    role: str
    answered: int = 0
    skipped: int = 0
    reserved: int = 0
    median_seconds: float | None = None
    gold_correct: int = 0
    gold_total: int = 0
    agree_pairs: int = 0
    overlap_pairs: int = 0

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_total if self.gold_total else None

    @property
    def agreement(self) -> float | None:
        return self.agree_pairs / self.overlap_pairs if self.overlap_pairs else None


@dataclass
class QueueOverview:
    annotators: list[AnnotatorRow]
    open_tasks: int
    closed_tasks: int
    reserved_now: int
    gold_items: int
    gold_rate: float
    disagreements: int
    totals: dict = field(default_factory=dict)


def _review_answers(project: Project) -> QuerySet:
    return HumanAnnotation.objects.filter(sample__project=project, source=HumanSource.REVIEW).order_by(
        "-created_at", "-id"
    )


def review_queue_overview(*, project: Project) -> QueueOverview:
    """Per annotator: answered, skipped, live reservations, median seconds, gold accuracy, agreement."""
    rows = {
        user_id: AnnotatorRow(user_id=user_id, username=username, role=role)
        for user_id, username, role in Membership.objects.filter(project=project).values_list(
            "user_id", "user__username", "role"
        )
    }
    statuses = (
        Assignment.objects.filter(task__project=project)
        .values("annotator_id")
        .annotate(
            answered=Count("id", filter=Q(status=AssignmentStatus.ANSWERED)),
            skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)),
            reserved=Count("id", filter=Q(status=AssignmentStatus.RESERVED)),
        )
    )
    for entry in statuses:
        row = rows.get(entry["annotator_id"])
        if row is not None:
            row.answered, row.skipped, row.reserved = entry["answered"], entry["skipped"], entry["reserved"]
    answers = _review_answers(project)
    for user_id, seconds in review_stats.median_by_key(answers.values_list("annotator_id", "seconds_spent")).items():
        if user_id in rows:
            rows[user_id].median_seconds = seconds
    gold_rows = Assignment.objects.filter(
        task__project=project, task__kind=TaskKind.GOLD, status=AssignmentStatus.ANSWERED
    ).values_list("annotator_id", "answer__label", "task__sample__gold_item__label")
    for user_id, (correct, total) in review_stats.accuracy_by_key(
        (user_id, answered, known) for user_id, answered, known in gold_rows if known
    ).items():
        if user_id in rows:
            rows[user_id].gold_correct, rows[user_id].gold_total = correct, total
    label_rows = list(answers.exclude(label="").values_list("sample_id", "annotator_id", "label"))
    for user_id, (agree, total) in review_stats.agreement_by_annotator(label_rows).items():
        if user_id in rows:
            rows[user_id].agree_pairs, rows[user_id].overlap_pairs = agree, total
    tasks = ReviewTask.objects.filter(project=project).aggregate(
        open=Count("id", filter=Q(is_open=True) & ~Q(kind=TaskKind.GOLD)),
        closed=Count("id", filter=Q(is_open=False) & ~Q(kind=TaskKind.GOLD)),
    )
    return QueueOverview(
        annotators=sorted(rows.values(), key=lambda row: (-row.answered, row.username)),
        open_tasks=tasks["open"],
        closed_tasks=tasks["closed"],
        reserved_now=sum(row.reserved for row in rows.values()),
        gold_items=GoldItem.objects.filter(project=project).count(),
        gold_rate=review_gold_rate(project),
        disagreements=len(_open_disagreements(project, label_rows)),
    )


def review_reservations(*, project: Project) -> list[Assignment]:
    return list(
        Assignment.objects.filter(task__project=project, status=AssignmentStatus.RESERVED)
        .select_related("annotator", "task__sample")
        .order_by("expires_at")
    )


def _open_disagreements(project: Project, label_rows: list[tuple]) -> dict:
    adjudicated = set(
        HumanAnnotation.objects.filter(sample__project=project, source=HumanSource.ADJUDICATION).values_list(
            "sample_id", flat=True
        )
    )
    return {
        sample_id: labels
        for sample_id, labels in review_stats.disagreements(label_rows).items()
        if sample_id not in adjudicated
    }


@dataclass
class Disagreement:
    sample: Sample
    labels: list[tuple[str, str]]  # (username, label)


def adjudication_queue(*, project: Project) -> list[Disagreement]:
    """Samples whose annotators disagree and that no lead has adjudicated yet, oldest first."""
    label_rows = list(
        _review_answers(project).exclude(label="").values_list("sample_id", "annotator__username", "label")
    )
    open_items = _open_disagreements(project, label_rows)
    samples = Sample.objects.in_bulk(list(open_items))
    return [
        Disagreement(sample=samples[sample_id], labels=sorted(labels.items()))
        for sample_id, labels in sorted(open_items.items())
        if sample_id in samples
    ]


def sample_answers(*, sample: Sample) -> list[HumanAnnotation]:
    return list(sample.human_annotations.select_related("annotator").order_by("created_at", "id"))
