"""An annotator's own past answers and skips, filtered (label, flagged, answered or skipped, date range) and
paginated on the server. Always one annotator's rows in one project: the query starts from
Assignment.objects.of_annotator (the leading columns of the index assignment_by_annotator)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce

from annotation.models import Assignment, AssignmentStatus
from synthstudio.models import Project

ANSWERED, SKIPPED, ALL = "answered", "skipped", "all"


@dataclass(frozen=True)
class HistoryFilter:
    status: str = ANSWERED  # answered | skipped | all
    label: str = ""
    flagged: str = ""  # yes | no (answers only: a skip carries no flag)
    since: date | None = None  # on or after, by the day of the answer (or of the skip's reservation)
    until: date | None = None  # on or before


def review_history(*, project: Project, annotator, history_filter: HistoryFilter) -> QuerySet[Assignment]:
    """The annotator's answered and/or skipped items in the project, newest first, each with `when` (answered,
    or reserved for a skip) and its answer and sample loaded."""
    statuses = {
        ANSWERED: [AssignmentStatus.ANSWERED],
        SKIPPED: [AssignmentStatus.SKIPPED],
        ALL: [AssignmentStatus.ANSWERED, AssignmentStatus.SKIPPED],
    }[history_filter.status]
    rows = (
        Assignment.objects.of_annotator(annotator, project)
        .filter(status__in=statuses)
        .annotate(when=Coalesce(F("answered_at"), F("reserved_at")))
        .select_related("task__sample", "answer")
    )
    if history_filter.label:
        rows = rows.filter(answer__label=history_filter.label)
    if history_filter.flagged == "yes":
        rows = rows.filter(answer__isnull=False).exclude(answer__flag="")
    elif history_filter.flagged == "no":
        rows = rows.exclude(answer__flag__gt="")
    if history_filter.since:
        rows = rows.filter(when__date__gte=history_filter.since)
    if history_filter.until:
        rows = rows.filter(when__date__lte=history_filter.until)
    return rows.order_by("-when", "-id")
