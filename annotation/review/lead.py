"""The lead's side of the review queue: release or reassign a reservation, mark and remove gold items, and the
reads of the lead pages (queue overview per annotator, live reservations, the disagreements waiting for
adjudication and a sample's answers). Recording an adjudication writes a human answer, so it lives with the
answers (annotation.review.answers.adjudication_record).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from annotation.models import Assignment, AssignmentStatus, GoldItem, ReviewTask, TaskKind
from annotation.review import stats as review_stats
from annotation.review.queue import ReviewError, review_gold_rate, review_task_claim, write_transaction
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
