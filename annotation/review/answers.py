"""Human answers: submit, skip, undo, edit, and a lead's adjudication (an answer of its own kind) — every
path that writes a human answer, so each validates it the same way and tells the router after commit.

`review_answer_submit` is the one path a review answer takes. It locks the assignment row and is idempotent: a
second POST of the same form (double click, retry after a network error) finds the assignment answered and
returns the stored answer. It refreshes the sample's final label at once (so the sample joins the
human-verified demo pool), and calls the router's `routing_after_answer(project=...)` after commit.

Text corrections are kept as SampleTextVersion rows, pending until a lead accepts or rejects them
(annotation.review.lead); Sample.text stays the original, because that is what was generated and what the
LLM labelled. An accepted correction is the sample's current text for curation and snapshots.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import transaction
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentStatus,
    CorrectionStatus,
    ReviewTask,
    SampleTextVersion,
    TaskKind,
)
from annotation.review import stats as review_stats
from annotation.review.final_labels import final_label_lock, final_label_refresh, human_label_rows
from annotation.review.queue import ReviewError, write_transaction
from annotation.routing.services import routing_after_answer
from synthstudio.models import (
    Codebook,
    FlagReason,
    HumanAnnotation,
    HumanSource,
    Label,
    Project,
    QualityRating,
    Sample,
)

logger = logging.getLogger(__name__)


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


def _text_version_add(
    *, sample: Sample, text: str, author_id: int | None, annotation: HumanAnnotation
) -> SampleTextVersion | None:
    """A new pending correction, unless the same text is already pending or accepted for this sample (a second
    annotator's identical fix adds nothing for the lead to decide). The answer's own earlier pending
    correction is superseded: the lead decides on the annotator's latest text only."""
    versions = sample.text_versions.all()
    if (
        text == sample.text
        or versions.filter(
            text=text, status__in=(CorrectionStatus.PENDING, CorrectionStatus.ACCEPTED)
        ).exists()
    ):
        return None
    versions.filter(annotation=annotation, status=CorrectionStatus.PENDING).update(
        status=CorrectionStatus.SUPERSEDED
    )
    latest = versions.order_by("-version").first()
    return SampleTextVersion.objects.create(
        sample=sample,
        version=(latest.version + 1) if latest else 1,
        text=text,
        author_id=author_id,
        annotation=annotation,
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
        answer=answer,
        assignment=assignment,
        llm=llm,
        edited_text=edited_text,
        now=now,
        submission_id=submission_id[:64],
        client_seconds=seconds_spent,
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


def _seconds_spent(
    client_seconds: float | None, reserved_at: datetime, now: datetime, project: Project
) -> float:
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
        _text_version_add(
            sample=task.sample, text=edited_text, author_id=assignment.annotator_id, annotation=answer
        )
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
        if not ReviewTask.objects.filter(pk=fresh.task_id).take_slot(
            gold=assignment.task.kind == TaskKind.GOLD
        ):
            raise ReviewError("Your reservation expired and the item went to someone else.")
        Assignment.objects.filter(pk=fresh.pk).update(status=AssignmentStatus.RESERVED)
        assignment.reserved_at = fresh.reserved_at
        return None
    raise ReviewError("This item is no longer reserved for you.")


def review_skip(*, assignment: Assignment, reason: str) -> None:
    """Give the item back to the others; it never comes back to this annotator. The reason is optional."""
    reason = reason.strip()
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
        Assignment.objects.of_annotator(annotator, project)
        .answered()
        .select_related("task")
        .order_by("-answered_at", "-id")
        .first()
    )
    if last is None:
        return None
    now = timezone.now()
    with write_transaction():
        final_label_lock(sample_id=last.task.sample_id)  # first, in the order an answer takes its locks
        fresh = (
            Assignment.objects.select_for_update(of=("self",)).select_related("task__sample").get(pk=last.pk)
        )
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
    """Change one's own earlier answer in place; a changed text adds a new pending text version (replacing the
    answer's pending one), the original text sent back withdraws the answer's pending correction."""
    task = ReviewTask.objects.select_related("project", "sample").get(pk=assignment.task_id)
    project, sample = task.project, task.sample
    _validated(project.codebook, label=label, rating=rating, flag=flag, flag_note=flag_note)
    if assignment.status != AssignmentStatus.ANSWERED or assignment.answer_id is None:
        raise ReviewError("Only an answered item can be edited.")
    original_sent_back = edited_text.strip() == sample.text.strip()  # not a form without the text box
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
            _text_version_add(
                sample=sample, text=edited_text, author_id=assignment.annotator_id, annotation=annotation
            )
        elif original_sent_back and annotation.edited_text:  # the text put back as it was: withdrawn
            annotation.edited_text = ""
            SampleTextVersion.objects.filter(annotation=annotation, status=CorrectionStatus.PENDING).update(
                status=CorrectionStatus.SUPERSEDED
            )
        annotation.save()
        final_label_refresh(sample=sample)
        transaction.on_commit(lambda: _routing_after_answer(project))
    return annotation


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
