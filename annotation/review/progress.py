"""What the annotator sees of their own work: progress (done today, left, streak). Their past answers:
annotation.review.history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotation.models import Assignment, ReviewTask
from annotation.review import stats as review_stats
from synthstudio.models import Project


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
        ReviewTask.objects.filter(project=project)
        .claimable_by(annotator, gold=False)[:REMAINING_COUNT_CAP]
        .count()
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
