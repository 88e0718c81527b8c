"""Automatic rounds through a real Celery worker: the worker's own signals and tasks take the loop from
generation to waiting for humans, and the humans' answers (given here, as the review queue's requests do)
start the next round in the worker."""

from __future__ import annotations

import time

import pytest

from annotation.models import RoutingPolicy
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_next
from generation.models import GenerationRun, RoundState
from generation.prompts import DEFAULT_TEMPLATE
from generation.services.configs import config_create_version
from generation.services.runs import run_start


def wait_until(condition, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("Timed out waiting for the rounds loop")


@pytest.mark.worker
def test_a_worker_runs_the_loop_from_generation_to_the_next_round(
    celery_worker_process, project, lead, annotator
):
    RoutingPolicy.objects.create(
        project=project, strategy="random", budget_share=1.0, batch_size=10_000, annotators_per_item=1
    )
    config = config_create_version(
        project=project,
        user=lead,
        name="looped",
        values={
            "endpoint": None,
            "template": DEFAULT_TEMPLATE,
            "target_count": 4,
            "dimensions": [{"name": "topic", "values": ["plot", "acting"]}],
            "rounds": 2,
        },
    )
    first = run_start(config=config, user=lead)
    wait_until(
        lambda: GenerationRun.objects.filter(pk=first.pk, round_state=RoundState.AWAITING_ANSWERS).exists()
    )
    while (assignment := review_next(project=project, annotator=annotator)) is not None:
        review_answer_submit(assignment=assignment, label="positive")
    second = wait_until(
        lambda: GenerationRun.objects.filter(
            previous_round_id=first.pk, round_state=RoundState.AWAITING_ANSWERS
        ).first()
    )
    first.refresh_from_db()
    assert first.round_state == RoundState.CONTINUED and first.round_report["reviewed"] == 4
    assert second.round_number == 2 and second.condition_weights == first.round_report["next_weights"]
