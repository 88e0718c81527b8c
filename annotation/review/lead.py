"""The lead's side of the review queue: release or reassign a reservation, mark and remove gold items, accept
or reject annotators' text corrections, and the reads of the lead pages (queue overview per annotator, live
reservations, the disagreements waiting for adjudication, a sample's answers, the text corrections). Recording an adjudication writes a human answer, so it lives with the
answers (annotation.review.answers.adjudication_record).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentStatus,
    CorrectionStatus,
    GoldItem,
    LabelAggregation,
    ReviewSettings,
    ReviewTask,
    SampleTextVersion,
    TaskKind,
)
from annotation.review import stats as review_stats
from annotation.review.aggregation import DawidSkeneFit
from annotation.review.queue import ReviewError, review_gold_rate, review_task_claim, write_transaction
from annotation.review.text_diff import DiffSegment, text_diff
from synthstudio.models import HumanAnnotation, HumanSource, Membership, Project, Sample

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
        return review_task_claim(task=task, annotator=annotator)


def gold_item_mark(*, project: Project, sample: Sample, label: str, user, note: str = "") -> GoldItem:
    """Mark a sample as a gold item with its known label and put it into the gold mix."""
    if sample.project_id != project.id:
        raise ReviewError("That sample belongs to another project.")
    codebook = project.codebook
    if codebook is None or label not in codebook.label_names:
        raise ReviewError(f"{label!r} is not a label of the codebook.")
    with write_transaction():
        gold, _ = GoldItem.objects.update_or_create(
            sample=sample,
            defaults={"project": project, "label": label, "note": note.strip(), "created_by": user},
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


# Corrections still in play for a sample: the lead picks at most one of them.
OPEN_CORRECTIONS = (CorrectionStatus.PENDING, CorrectionStatus.ACCEPTED)
BULK_ACCEPT_CHUNK = 500


def text_correction_decide(*, correction: SampleTextVersion, accept: bool, user) -> SampleTextVersion:
    """Accept: the correction becomes the sample's current text for curation and the next snapshot, and every
    other open correction of the sample is rejected (the lead picked this one). Reject: it is not used; rejecting
    the accepted one puts the original text back. A correction its author has replaced cannot be decided."""
    now = timezone.now()
    with write_transaction():
        versions = SampleTextVersion.objects.select_for_update().filter(sample_id=correction.sample_id)
        fresh = versions.filter(pk=correction.pk).first()
        if fresh is None:
            raise ReviewError("That correction was taken back by its author.")
        if fresh.status == CorrectionStatus.SUPERSEDED:
            raise ReviewError("Its author replaced that correction with a later edit; decide on that one.")
        decided = {"decided_by": user, "decided_at": now}
        if accept:  # first, so the sample never has two accepted texts
            versions.exclude(pk=fresh.pk).filter(status__in=OPEN_CORRECTIONS).update(
                status=CorrectionStatus.REJECTED, **decided
            )
        status = CorrectionStatus.ACCEPTED if accept else CorrectionStatus.REJECTED
        versions.filter(pk=fresh.pk).update(status=status, **decided)
    fresh.status, fresh.decided_by, fresh.decided_at = status, user, now
    return fresh


def text_corrections_accept_all(*, project: Project, user) -> tuple[int, int]:
    """Accept every pending correction that is its sample's only open one. Samples that annotators corrected
    differently, or that have an accepted text already, are left for the lead to pick one.
    Returns (accepted, still pending)."""
    now = timezone.now()
    with write_transaction():
        in_project = SampleTextVersion.objects.filter(sample__project=project)
        open_per_sample = Counter(
            in_project.filter(status__in=OPEN_CORRECTIONS).values_list("sample_id", flat=True)
        )
        pending = in_project.filter(status=CorrectionStatus.PENDING)
        alone = [
            pk for pk, sample_id in pending.values_list("pk", "sample_id") if open_per_sample[sample_id] == 1
        ]
        for start in range(0, len(alone), BULK_ACCEPT_CHUNK):
            SampleTextVersion.objects.filter(
                pk__in=alone[start : start + BULK_ACCEPT_CHUNK], status=CorrectionStatus.PENDING
            ).update(status=CorrectionStatus.ACCEPTED, decided_by=user, decided_at=now)
        return len(alone), pending.count()


# ------------------------------------------------------------------------------------------------ reading


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
    estimated_accuracy: float | None = None  # Dawid–Skene, from the project's last fit
    estimated_from: int = 0  # answers in that fit

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
    label_aggregation: str = LabelAggregation.MAJORITY
    reliability_fitted_at: datetime | None = None  # of the last Dawid–Skene fit


def _review_answers(project: Project) -> QuerySet:
    return HumanAnnotation.objects.filter(sample__project=project, source=HumanSource.REVIEW).order_by(
        "-created_at", "-id"
    )


def review_queue_overview(*, project: Project) -> QueueOverview:
    """Per annotator: answered, skipped, live reservations, median seconds, gold accuracy, agreement and the
    accuracy Dawid–Skene estimates (annotation.review.reliability), with the project's aggregation method."""
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
    for user_id, seconds in review_stats.median_by_key(
        answers.values_list("annotator_id", "seconds_spent")
    ).items():
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
    review_settings = ReviewSettings.objects.filter(project=project).first()
    reliability = review_settings.annotator_reliability if review_settings else {}
    fit = DawidSkeneFit.from_json(reliability)
    for user_id, row in rows.items():
        if fit and str(user_id) in fit.accuracy:
            row.estimated_accuracy = fit.accuracy[str(user_id)]
            row.estimated_from = fit.answers.get(str(user_id), 0)
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
        label_aggregation=review_settings.label_aggregation if review_settings else LabelAggregation.MAJORITY,
        reliability_fitted_at=datetime.fromisoformat(reliability["fitted_at"]) if fit else None,
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


@dataclass
class TextCorrection:
    correction: SampleTextVersion  # with its sample, author and decider
    diff: list[DiffSegment]  # the sample's original text -> the corrected text
    rivals: int  # an open correction's rivals: its sample's other open corrections (the lead picks one)


def text_corrections(*, project: Project, status: str) -> QuerySet:
    """The project's corrections in one status, grouped by sample (rival corrections next to each other)."""
    return (
        SampleTextVersion.objects.filter(sample__project=project, status=status)
        .select_related("sample", "author", "decided_by")
        .order_by("sample_id", "version")
    )


def text_correction_counts(*, project: Project) -> dict[str, int]:
    counts = dict(
        SampleTextVersion.objects.filter(sample__project=project)
        .values_list("status")
        .annotate(count=Count("id"))
        .values_list("status", "count")
    )
    return {status: counts.get(status, 0) for status in CorrectionStatus.values}


def text_correction_rows(corrections: list[SampleTextVersion]) -> list[TextCorrection]:
    """A page of corrections with their diffs and how many other open corrections their sample has."""
    open_per_sample = Counter(
        SampleTextVersion.objects.filter(
            sample_id__in={row.sample_id for row in corrections}, status__in=OPEN_CORRECTIONS
        ).values_list("sample_id", flat=True)
    )
    return [
        TextCorrection(
            correction=row,
            diff=text_diff(row.sample.text, row.text),
            rivals=open_per_sample[row.sample_id] - 1 if row.status in OPEN_CORRECTIONS else 0,
        )
        for row in corrections
    ]
