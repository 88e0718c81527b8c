"""Many annotators claiming at once, with real threads and real transactions (SQLite and, via DATABASE_URL,
PostgreSQL): no item beyond its overlap, never one annotator twice on an item, no answer lost."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections

from annotation.models import Assignment, AssignmentStatus, ReviewTask, TaskKind
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_gold_rate_set, review_next, review_tasks_create
from synthstudio.models import HumanAnnotation, Membership, Role, Sample
from tests.conftest import make_user

ANNOTATORS = 6
ITEMS = 12
OVERLAP = 2


def work_the_queue(project, user, answered: list, errors: list) -> None:
    try:
        while True:
            assignment = review_next(project=project, annotator=user)
            if assignment is None:
                return
            review_answer_submit(assignment=assignment, label="positive", submission_id=f"{assignment.pk}")
            answered.append((assignment.task_id, user.pk))
    except Exception as error:  # reported by the test, not swallowed
        errors.append(error)
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_it_keeps_overlap_exact_when_annotators_claim_concurrently(project):
    review_gold_rate_set(project=project, gold_rate=0.0)
    samples = [
        Sample.objects.create(project=project, text=f"review number {index}") for index in range(ITEMS)
    ]
    review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test", 1.0) for sample in samples],
        kind=TaskKind.ROUTED,
        required_answers=OVERLAP,
        strategy="test",
        batch=1,
    )
    users = []
    for index in range(ANNOTATORS):
        user = make_user(f"worker{index}")
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
        users.append(user)
    answered: list = []
    errors: list = []
    threads = [
        threading.Thread(target=work_the_queue, args=(project, user, answered, errors)) for user in users
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(answered) == ITEMS * OVERLAP
    per_task = Counter(task_id for task_id, _ in answered)
    assert set(per_task.values()) == {OVERLAP}
    assert len(set(answered)) == len(answered)
    stored = Counter(
        Assignment.objects.filter(status=AssignmentStatus.ANSWERED, answer__isnull=False).values_list(
            "task_id", flat=True
        )
    )
    assert stored == per_task
    assert HumanAnnotation.objects.count() == ITEMS * OVERLAP
    assert not ReviewTask.objects.filter(is_open=True).exists()


@pytest.mark.django_db(transaction=True)
def test_it_stores_one_answer_when_two_requests_submit_the_same_reservation_at_once(project, annotator):
    sample = Sample.objects.create(project=project, text="double click me")
    review_gold_rate_set(project=project, gold_rate=0.0)
    review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test")],
        kind=TaskKind.ROUTED,
        required_answers=1,
        strategy="test",
        batch=1,
    )
    assignment = review_next(project=project, annotator=annotator)
    results: list = []
    barrier = threading.Barrier(4)

    def submit() -> None:
        try:
            barrier.wait()
            results.append(
                review_answer_submit(assignment=assignment, label="negative", submission_id="same").pk
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert HumanAnnotation.objects.filter(sample=sample).count() == 1


@pytest.mark.django_db(transaction=True)
def test_annotators_answering_the_same_item_at_once_all_count_in_its_final_label(project, monkeypatch):
    """The first answer's transaction stays open (slowed inside, before its commit) while two more answers to the
    same item arrive; the final label must still count all three votes."""
    import time

    from annotation.review import final_labels
    from synthstudio.models import FinalSource

    review_gold_rate_set(project=project, gold_rate=0.0)
    sample = Sample.objects.create(project=project, text="one item, three annotators")
    review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test", 1.0)],
        kind=TaskKind.ROUTED,
        required_answers=3,
    )
    users = [make_user(f"voter{index}") for index in range(3)]
    for user in users:
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    assignments = [review_next(project=project, annotator=user) for user in users]
    refresh = final_labels.final_label_refresh

    def slow_for_the_first(**kwargs):
        decision = refresh(**kwargs)
        if threading.current_thread().name == "first":
            time.sleep(0.6)  # the others start while this answer is not yet committed
        return decision

    monkeypatch.setattr("annotation.review.answers.final_label_refresh", slow_for_the_first)
    errors: list = []

    def answer(assignment, label):
        try:
            review_answer_submit(assignment=assignment, label=label)
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    first = threading.Thread(target=answer, args=(assignments[0], "negative"), name="first")
    first.start()
    time.sleep(0.2)
    others = [
        threading.Thread(target=answer, args=(a, label))
        for a, label in ((assignments[1], "negative"), (assignments[2], "positive"))
    ]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join()
    assert errors == []
    sample.refresh_from_db()
    assert (sample.final_label, sample.final_source) == ("negative", FinalSource.HUMAN)
    assert sample.final_weight == pytest.approx(2 / 3)
