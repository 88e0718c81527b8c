"""bench_review: the annotators' think times, and a tiny run over real HTTP (Django's threaded server, a
throwaway database) that serves every item once and reports the invariants."""

from __future__ import annotations

import json
import random
from io import StringIO
from statistics import mean, pstdev

import pytest
from django.core.management import call_command

from annotation.management.commands.bench_review import think_seconds


def test_think_times_are_exponential_with_the_given_mean_and_repeat_with_the_seed():
    first, again = think_seconds(random.Random(7), 40.0), think_seconds(random.Random(7), 40.0)
    assert first == again > 0
    rng = random.Random(1)
    sample = [think_seconds(rng, 40.0) for _ in range(20_000)]
    assert mean(sample) == pytest.approx(0.040, rel=0.03)
    assert pstdev(sample) / mean(sample) == pytest.approx(1.0, rel=0.05)  # exponential: sd = mean
    assert think_seconds(rng, 0.0) == 0.0  # the closed loop does not pause


@pytest.mark.django_db(transaction=True)
def test_annotators_who_think_answer_every_item_once_and_the_report_says_so():
    out = StringIO()
    call_command(
        "bench_review",
        "--annotators",
        "3",
        "--items",
        "12",
        "--think-ms",
        "20",
        "--seed",
        "3",
        "--server",
        "django",
        stdout=out,
    )
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    assert report["first_error"] == "" and report["client_errors"] == 0
    assert (report["answers"], report["items_with_exact_overlap"], report["incomplete_items"]) == (12, 12, 0)
    assert (report["double_assignments"], report["lost_answers"], report["duplicate_answers"]) == (0, 0, 0)
    assert report["think_ms"] == 20.0 and report["offered_answers_per_s"] == 150.0
    assert report["served_answers_per_s"] > 0 and report["answers_per_s"] > 0
    assert 0 < report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
