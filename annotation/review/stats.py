"""Plain-Python figures for the review queue (no Django): gold mixing, streaks, speed, agreement, disagreements.

Inputs are lists of tuples loaded by annotation.review; outputs are dicts keyed by annotator id or sample id.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable
from datetime import date, timedelta
from statistics import median


def gold_due(answered_count: int, gold_rate: float) -> bool:
    """Whether the annotator's next item should be a gold check: the (n+1)-th item is gold when the running
    count of gold items owed, floor(n × rate), steps up. rate 0.1 → every 10th item, 0.25 → every 4th."""
    if gold_rate <= 0:
        return False
    rate = min(gold_rate, 1.0)
    return math.floor((answered_count + 1) * rate + 1e-9) > math.floor(answered_count * rate + 1e-9)


def bounded_seconds(
    client_seconds: float | None, server_seconds: float, ceiling: float, slack: float = 2.0
) -> float:
    """Time spent on an item: the client's measurement (it excludes network time) but never more than the
    server saw since the reservation (+ slack for clock granularity), never negative, never above `ceiling`."""
    upper = max(0.0, min(server_seconds + slack, ceiling))
    if client_seconds is None or not math.isfinite(client_seconds):
        return round(min(max(server_seconds, 0.0), upper), 3)
    return round(min(max(client_seconds, 0.0), upper), 3)


def day_streak(answer_days: Iterable[date], today: date) -> int:
    """Consecutive days with at least one answer, ending today (or yesterday, so a streak survives until the
    annotator's first answer of the day)."""
    days = set(answer_days)
    start = today if today in days else today - timedelta(days=1)
    streak = 0
    while start - timedelta(days=streak) in days:
        streak += 1
    return streak


def median_by_key(pairs: Iterable[tuple[Hashable, float | None]]) -> dict[Hashable, float]:
    """Median of the values per key, ignoring missing values."""
    grouped: dict[Hashable, list[float]] = defaultdict(list)
    for key, value in pairs:
        if value is not None:
            grouped[key].append(float(value))
    return {key: float(median(values)) for key, values in grouped.items()}


def accuracy_by_key(rows: Iterable[tuple[Hashable, str, str]]) -> dict[Hashable, tuple[int, int]]:
    """(correct, total) per key from (key, answered label, known label) rows."""
    counts: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0])
    for key, answered, known in rows:
        counts[key][1] += 1
        if answered == known:
            counts[key][0] += 1
    return {key: (correct, total) for key, (correct, total) in counts.items()}


def latest_label_per_annotator(answers: Iterable[tuple[Hashable, Hashable, str]]) -> dict[Hashable, dict]:
    """{item: {annotator: label}} from (item, annotator, label) rows given newest first: the newest wins."""
    by_item: dict[Hashable, dict] = defaultdict(dict)
    for item, annotator, label in answers:
        if label:
            by_item[item].setdefault(annotator, label)
    return by_item


def agreement_by_annotator(
    answers: Iterable[tuple[Hashable, Hashable, str]],
) -> dict[Hashable, tuple[int, int]]:
    """Pairwise agreement with others: for each annotator, over every other annotator's label on the items
    they both answered, (pairs that agree, pairs). Rows are (item, annotator, label), newest first."""
    counts: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0])
    for labels in latest_label_per_annotator(answers).values():
        if len(labels) < 2:
            continue
        for annotator, label in labels.items():
            for other, other_label in labels.items():
                if other == annotator:
                    continue
                counts[annotator][1] += 1
                if other_label == label:
                    counts[annotator][0] += 1
    return {key: (agree, total) for key, (agree, total) in counts.items()}


def disagreements(answers: Iterable[tuple[Hashable, Hashable, str]]) -> dict[Hashable, dict]:
    """Items whose annotators gave more than one distinct label: {item: {annotator: label}}."""
    return {
        item: labels
        for item, labels in latest_label_per_annotator(answers).items()
        if len(set(labels.values())) > 1
    }
