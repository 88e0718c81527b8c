"""Generation conditions and config as learned-router features: named columns ("topic=sport"), a higher
predicted error where the LLM is wrong on one condition value, and reasons that name the condition when it
dominates — in the core (annotation.routing.router) and through the routing service with conditions read from
the samples' provenance (annotation.routing.provenance)."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import ReviewTask
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_next
from annotation.routing.provenance import router_conditions, sample_conditions
from annotation.routing.router import (
    MIN_CONDITION_ANSWERS,
    RouterItems,
    feature_matrix,
    one_hot_conditions,
    predict_error,
    route_next_batch,
    usable_condition_columns,
)
from annotation.routing.services import routing_policy_for, routing_route_next_batch
from synthstudio.models import LabelMethod, Sample

TOPICS = ("sport", "news", "food", "music")


def items_wrong_on_sport(n: int = 200, seed: int = 0) -> tuple[RouterItems, np.ndarray]:
    """Every LLM label on a sport item is wrong, none elsewhere; the LLM's confidence, the student and the
    neighbours say nothing about it (drawn independently)."""
    rng = np.random.default_rng(seed)
    topics = [TOPICS[i % 4] for i in range(n)]
    conditions, names = one_hot_conditions(
        [{"topic": t, "config": f"cfg {i % 2}"} for i, t in enumerate(topics)]
    )
    confidence = rng.uniform(0.55, 0.99, n)
    probs = np.column_stack([confidence, 1 - confidence])
    items = RouterItems(
        probs=probs,
        llm_label=np.zeros(n, dtype=np.int64),
        student_prob=rng.uniform(0.3, 1.0, n),
        knn_agreement=rng.uniform(0.3, 1.0, n),
        text_length=rng.integers(20, 200, n),
        conditions=conditions,
        condition_names=names,
    )
    return items, np.array([t == "sport" for t in topics])


def test_condition_columns_carry_their_names():
    items, _ = items_wrong_on_sport(8)
    _, names = feature_matrix(items)
    assert {"topic=sport", "topic=news", "config=cfg 0", "config=cfg 1"} <= set(names)
    assert not any(name.startswith("condition_") for name in names)


def test_the_predicted_error_is_higher_on_the_condition_the_llm_gets_wrong():
    items, wrong = items_wrong_on_sport()
    reviewed = np.arange(80)
    prediction = predict_error(items, reviewed=reviewed, llm_was_wrong=wrong[reviewed])
    unreviewed = np.arange(80, 200)
    sport = unreviewed[wrong[unreviewed]]
    other = unreviewed[~wrong[unreviewed]]
    assert prediction.mode == "learned"
    assert prediction.probability[sport].min() > prediction.probability[other].max()
    assert prediction.probability[sport].mean() > 0.5 > prediction.probability[other].mean()


def test_reasons_name_the_condition_when_it_dominates():
    items, wrong = items_wrong_on_sport()
    reviewed = np.arange(80)
    batch = route_next_batch(items, reviewed=reviewed, llm_was_wrong=wrong[reviewed], batch_size=10)
    assert wrong[batch.indices].all()
    assert all("condition topic=sport: LLM wrong on 20 of 20 reviewed" in reason for reason in batch.reasons)
    assert all(reason.startswith("predicted error") for reason in batch.reasons)


def test_without_condition_features_the_router_cannot_find_that_pattern():
    items, wrong = items_wrong_on_sport()
    blind = RouterItems(
        probs=items.probs,
        llm_label=items.llm_label,
        student_prob=items.student_prob,
        knn_agreement=items.knn_agreement,
        text_length=items.text_length,
    )
    reviewed = np.arange(80)
    batch = route_next_batch(blind, reviewed=reviewed, llm_was_wrong=wrong[reviewed], batch_size=20)
    assert (
        wrong[batch.indices].mean() < 0.6
    )  # sport is a quarter of the items: near chance without conditions
    assert not any("condition" in reason for reason in batch.reasons)


def test_rare_condition_values_get_no_coefficient():
    items, _ = items_wrong_on_sport(40)
    reviewed = np.arange(MIN_CONDITION_ANSWERS * 4 - 1)  # 11 items: sport, news, food 3 each, music 2
    kept = [items.condition_names[c] for c in usable_condition_columns(items, reviewed)]
    assert "topic=music" not in kept and {"topic=sport", "topic=news", "topic=food"} <= set(kept)
    assert usable_condition_columns(items, np.zeros(0, dtype=np.int64)).size == 0


def test_condition_names_must_match_the_columns():
    items, _ = items_wrong_on_sport(8)
    with pytest.raises(ValueError):
        RouterItems(
            probs=items.probs,
            llm_label=items.llm_label,
            student_prob=items.student_prob,
            knn_agreement=items.knn_agreement,
            text_length=items.text_length,
            conditions=items.conditions,
            condition_names=["topic=sport"],
        )


# ---------------------------------------------------------------- through the routing service

# The texts do not reveal the topic (a student on the embeddings cannot find the pattern): only the generation
# conditions do, as when the LLM fails on a tone or an audience rather than on a subject.
TEXTS = [
    "I went there on Tuesday and it was what I expected",
    "It took longer than planned but we got there in the end",
    "Everyone had an opinion about it and nobody agreed",
    "We talked about it for hours after we got home",
]


def generated_project(project) -> tuple[list[Sample], dict[int, str]]:
    """Generated samples under topic conditions (sport, food, travel) from one config, plus two imported
    samples; the LLM labels everything 'positive'."""
    samples, topic_of = [], {}
    for i in range(60):
        topic = ("sport", "food", "travel")[i % 3]
        sample = Sample.objects.create(
            project=project,
            text=f"{TEXTS[i % 4]} (note {i})",
            origin="generated",
            provenance={
                "conditions": {"topic": topic, "tone": ("calm", "loud")[i % 2]},
                "config": 7,
                "config_name": "Reviews",
                "config_version": 2,
                "prompt": [{"role": "user", "content": "a long prompt " * 50}],
            },
        )
        samples.append(sample)
        topic_of[sample.pk] = topic
    samples += [Sample.objects.create(project=project, text=f"An imported note {i}") for i in range(2)]
    llm_annotations_record(
        samples=samples,
        readings=[LabelReading("positive", {"positive": 0.8, "negative": 0.2}, True, confidence=0.8)]
        * len(samples),
        codebook=project.codebook,
        method=LabelMethod.IMPORTED,
        model_name="test",
        run_ref="test",
    )
    return samples, topic_of


def test_sample_conditions_read_the_provenance_and_imported_samples_have_only_their_origin(project):
    samples, _ = generated_project(project)
    conditions = sample_conditions(samples=[samples[0], samples[-1]])
    assert conditions == [
        {"origin": "generated", "topic": "sport", "tone": "calm", "config": "Reviews v2"},
        {"origin": "imported"},
    ]
    matrix, names = router_conditions(samples=samples)
    assert matrix.shape == (62, len(names))
    assert "config=Reviews v2" in names and "topic=travel" in names and "origin=imported" in names
    assert matrix[-1].tolist() == [1.0 if name == "origin=imported" else 0.0 for name in names]


def test_the_learned_policy_routes_toward_the_topic_the_llm_gets_wrong(
    project, annotator, django_capture_on_commit_callbacks
):
    samples, topic_of = generated_project(project)
    routing = routing_policy_for(project=project)
    routing.strategy = "learned"
    routing.cold_start_size = 0
    routing.audit_share = 0.0  # no random audit draws: the batches are the router's alone
    routing.budget_kind = "count"
    routing.budget_count = 40
    routing.batch_size = 24
    routing.save()
    first = routing_route_next_batch(project=project)
    assert len(first) == 24
    # humans: every sport item is negative (the LLM said positive), everything else positive
    while (assignment := review_next(project=project, annotator=annotator)) is not None:
        truth = "negative" if topic_of.get(assignment.task.sample_id) == "sport" else "positive"
        with django_capture_on_commit_callbacks(execute=True):
            review_answer_submit(assignment=assignment, label=truth)
    # the finished batch queued the next one (16 items left in the budget), refitted on the 24 answers
    second = list(ReviewTask.objects.filter(project=project, batch=2).order_by("-priority"))
    assert len(second) == 16 and all(t.reason.startswith("predicted error") for t in second)
    sport_left = {s.pk for s in samples if topic_of.get(s.pk) == "sport"} - {t.sample_id for t in first}
    assert sport_left <= {t.sample_id for t in second}  # every sport item not yet reviewed comes next
    sport = [t for t in second if t.sample_id in sport_left]
    other_generated = [t for t in second if t.sample_id in topic_of and t.sample_id not in sport_left]
    assert min(t.priority for t in sport) > max((t.priority for t in other_generated), default=0.0)
    assert all("condition topic=sport: LLM wrong on" in t.reason for t in sport)
