"""Routing: policies route batches into the review queue within the budget, never a sample twice, with a
reason per item; the next batch follows the answers (through the review queue's one answer path)."""

from __future__ import annotations

import pytest

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import ReviewTask, RoutingPolicy, SampleSignals, TaskKind
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_next
from annotation.routing.services import (
    routing_after_answer,
    routing_policy_for,
    routing_preview,
    routing_route_next_batch,
)
from annotation.routing.signals import signals_refresh
from synthstudio.models import LabelMethod, Sample


def label_samples(project, confidences: list[float | None]) -> list[Sample]:
    """One sample per confidence with a current LLM label ('positive' at that confidence); None = the LLM
    named no valid label."""
    samples = [
        Sample.objects.create(project=project, text=f"review number {i} of a film")
        for i in range(len(confidences))
    ]
    readings = [
        LabelReading("", {}, False)
        if confidence is None
        else LabelReading(
            "positive", {"positive": confidence, "negative": 1 - confidence}, True, confidence=confidence
        )
        for confidence in confidences
    ]
    llm_annotations_record(
        samples=samples,
        readings=readings,
        codebook=project.codebook,
        method=LabelMethod.IMPORTED,
        model_name="test",
        run_ref="test",
    )
    return samples


def policy(project, **fields) -> RoutingPolicy:
    """The project's policy with `fields` set; no audit slice unless asked for, as these tests check the strategies'
    own picks (the audit slice is tested in test_audit_slice.py)."""
    fields = {"audit_share": 0.0, **fields}
    routing = routing_policy_for(project=project)
    for name, value in fields.items():
        setattr(routing, name, value)
    routing.save()
    return routing


def answer_everything(project, annotator, capture, label: str = "negative") -> int:
    """Answer until the queue is empty; each answer's on-commit hook (routing_after_answer) runs at once."""
    answered = 0
    while (assignment := review_next(project=project, annotator=annotator)) is not None:
        with capture(execute=True):
            review_answer_submit(assignment=assignment, label=label)
        answered += 1
    return answered


def test_entropy_routing_picks_the_most_uncertain_items_with_a_reason(project):
    samples = label_samples(project, [0.99, 0.5, 0.9, 0.6, 0.95])
    policy(project, strategy="entropy", budget_kind="count", budget_count=2, batch_size=2)
    tasks = routing_route_next_batch(project=project)
    assert [t.sample_id for t in sorted(tasks, key=lambda t: -t.priority)] == [samples[1].pk, samples[3].pk]
    assert tasks[0].reason.startswith("entropy 0.69") and tasks[0].kind == TaskKind.ROUTED
    assert tasks[0].strategy == "entropy" and tasks[0].batch == 1


def test_items_without_a_valid_llm_label_count_as_most_uncertain(project):
    samples = label_samples(project, [0.6, None, 0.9])
    policy(project, strategy="least_confidence", budget_kind="count", budget_count=1, batch_size=1)
    (task,) = routing_route_next_batch(project=project)
    assert task.sample_id == samples[1].pk and "no valid LLM label" in task.reason


def test_a_preview_writes_nothing(project):
    label_samples(project, [0.9, 0.6, 0.7])
    routing = policy(project, strategy="margin", budget_kind="count", budget_count=2, batch_size=2)
    rows = routing_preview(project=project, policy=routing)
    assert [row.reason for row in rows] == ["margin 0.20", "margin 0.40"]
    assert not ReviewTask.objects.exists()


def test_routing_never_exceeds_the_budget_nor_routes_a_sample_twice(
    project, annotator, django_capture_on_commit_callbacks
):
    label_samples(project, [0.5 + i / 100 for i in range(40)])
    policy(
        project,
        strategy="random",
        budget_kind="share",
        budget_share=0.25,
        batch_size=4,
        annotators_per_item=1,
    )
    routing_route_next_batch(project=project)
    answered = answer_everything(project, annotator, django_capture_on_commit_callbacks)
    tasks = ReviewTask.objects.filter(project=project)
    assert tasks.count() == 10 and answered == 10
    assert tasks.values("sample").distinct().count() == 10
    assert sorted(set(tasks.values_list("batch", flat=True))) == [1, 2, 3]  # 4 + 4 + 2
    assert routing_route_next_batch(project=project) == []
    assert routing_after_answer(project=project) is False


def test_the_next_batch_waits_until_the_open_one_is_answered(project, annotator):
    label_samples(project, [0.6, 0.7, 0.8, 0.9])
    policy(project, strategy="least_confidence", budget_kind="count", budget_count=4, batch_size=2)
    assert len(routing_route_next_batch(project=project)) == 2
    assert routing_after_answer(project=project) is False
    assert ReviewTask.objects.count() == 2


def test_an_inactive_policy_does_not_route_on_answers(project):
    label_samples(project, [0.6, 0.7])
    policy(project, is_active=False, budget_kind="count", budget_count=2, batch_size=1)
    assert routing_after_answer(project=project) is False


def test_overlap_sets_the_required_answers_and_human_verified_items_are_skipped(
    project, annotator, lead, django_capture_on_commit_callbacks
):
    samples = label_samples(project, [0.6, 0.7, 0.8])
    policy(
        project,
        strategy="least_confidence",
        budget_kind="count",
        budget_count=1,
        batch_size=1,
        annotators_per_item=2,
    )
    (task,) = routing_route_next_batch(project=project)
    assert task.required_answers == 2 and task.sample_id == samples[0].pk
    answer_everything(project, annotator, django_capture_on_commit_callbacks)
    answer_everything(project, lead, django_capture_on_commit_callbacks)
    samples[0].refresh_from_db()
    assert samples[0].final_source == "human"
    assert ReviewTask.objects.count() == 1  # the budget of one item is spent


def test_cold_start_comes_first_with_its_own_kind(project):
    label_samples(project, [0.6, 0.7, 0.8, 0.9, 0.99])
    policy(
        project,
        strategy="entropy",
        cold_start_size=2,
        cold_start_strategy="random",
        budget_kind="count",
        budget_count=4,
        batch_size=3,
    )
    tasks = routing_route_next_batch(project=project)
    assert len(tasks) == 2 and {t.kind for t in tasks} == {TaskKind.COLD_START}
    assert all(t.reason == "random pick" and t.strategy == "random" for t in tasks)


def test_signals_store_uncertainty_student_and_neighbour_agreement(project, samples):
    readings = [
        LabelReading("positive", {"positive": 0.9, "negative": 0.1}, True, confidence=0.9),
        LabelReading("negative", {"positive": 0.2, "negative": 0.8}, True, confidence=0.8),
        LabelReading("positive", {"positive": 0.6, "negative": 0.4}, True, confidence=0.6),
        LabelReading("", {}, False),
    ]
    llm_annotations_record(
        samples=samples,
        readings=readings,
        codebook=project.codebook,
        method=LabelMethod.IMPORTED,
        model_name="t",
        run_ref="t",
    )
    assert signals_refresh(project=project) == 4
    first = SampleSignals.objects.get(sample=samples[0])
    assert first.least_confidence == pytest.approx(0.1) and first.margin == pytest.approx(-0.8)
    assert first.llm_label == "positive" and 0.0 <= first.student_probability <= 1.0
    assert first.knn_agreement is not None and first.student_label in {"positive", "negative"}
    invalid = SampleSignals.objects.get(sample=samples[3])
    assert invalid.entropy is None and invalid.student_probability is None and invalid.llm_label == ""


def test_the_learned_router_starts_from_its_prior_and_learns_from_answers(
    project, annotator, django_capture_on_commit_callbacks
):
    # 60 items all labelled "positive"; humans say every third one is negative
    samples = label_samples(project, [0.55 + 0.4 * (i % 10) / 10 for i in range(60)])
    truth = {
        sample.pk: ("negative" if index % 3 == 0 else "positive") for index, sample in enumerate(samples)
    }
    policy(project, strategy="learned", budget_kind="count", budget_count=36, batch_size=12)
    first = routing_route_next_batch(project=project)
    assert all(t.reason.startswith("cold start: uncertainty ranking") for t in first)
    while (assignment := review_next(project=project, annotator=annotator)) is not None:
        with django_capture_on_commit_callbacks(execute=True):
            review_answer_submit(assignment=assignment, label=truth[assignment.task.sample_id])
    tasks = ReviewTask.objects.filter(project=project)
    assert tasks.count() == 36 and tasks.values("sample").distinct().count() == 36
    # after 24 answers of both kinds (router.MIN_ANSWERS_TO_LEARN = 20) the third batch is learned
    third = tasks.filter(batch=3)
    assert third.count() == 12 and all(t.reason.startswith("predicted error") for t in third)
