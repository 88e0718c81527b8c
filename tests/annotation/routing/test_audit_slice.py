"""Inclusion probabilities and the audit slice (ALGORITHMS.md §8): the pure Poisson sampling of
annotation.routing.audit (exact small cases and simulation), the planner's audit slice and "sample for estimation"
batches, and the routing service: every routed task records its π, audit draws are there for every strategy and
hidden from annotators, audit_share = 0 turns them off."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from annotation.forms import RoutingPolicyForm
from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import Assignment, AssignmentStatus, ReviewTask, RoutingPolicy, TaskKind
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_gold_rate_set
from annotation.routing.audit import (
    count_distribution,
    inclusion_probabilities,
    kept_share,
    poisson_draw,
)
from annotation.routing.plan import (
    RoutingPick,
    merge_audit_picks,
    plan_audit_slice,
    plan_estimation_batch,
    plan_routing_batch,
)
from annotation.routing.services import routing_policy_for, routing_preview, routing_route_next_batch
from synthstudio.models import LabelMethod, Sample

# ------------------------------------------------------------------------------ the pure sampling


def test_inclusion_probabilities_sum_to_the_expected_size_with_a_floor_and_a_cap():
    uncertainty = np.array([0.0, 0.0, 0.1, 0.2, 5.0, 9.0])
    pi = inclusion_probabilities(uncertainty, expected=3.0, uniform_share=0.5)
    assert pi.sum() == pytest.approx(3.0)
    assert pi.max() == pytest.approx(1.0) and (pi <= 1.0).all()  # the two big ones are capped
    assert pi[0] == pi[1] > 0  # no uncertainty still leaves the uniform floor
    assert pi[0] >= 0.5 * 3.0 / 6
    assert list(np.argsort(pi[:4], kind="stable")) == [0, 1, 2, 3]  # more uncertain, likelier


def test_inclusion_probabilities_at_the_extremes():
    assert inclusion_probabilities(np.ones(4), expected=0.0, uniform_share=0.5).tolist() == [0.0] * 4
    assert inclusion_probabilities(np.arange(4.0), expected=9.0, uniform_share=0.5).tolist() == [1.0] * 4
    assert inclusion_probabilities(np.zeros(4), expected=2.0, uniform_share=0.3).tolist() == [0.5] * 4
    with pytest.raises(ValueError):
        inclusion_probabilities(np.ones(4), expected=1.0, uniform_share=0.0)


def test_the_draw_count_law_is_the_poisson_binomial_by_enumeration():
    pi = np.array([0.05, 0.3, 0.5, 0.9, 1.0, 0.0, 0.65])
    exact = np.zeros(len(pi) + 1)
    for taken in itertools.product([0, 1], repeat=len(pi)):
        exact[sum(taken)] += np.prod([p if t else 1 - p for p, t in zip(pi, taken, strict=True)])
    assert count_distribution(pi, upto=len(pi)) == pytest.approx(exact, abs=1e-12)


def test_the_kept_share_after_a_cut_is_exact_by_enumeration():
    """P(item i routed) = π_i · kept_share_i, against the full enumeration of draws and uniform cuts."""
    pi = np.array([0.2, 0.7, 0.45, 0.9, 0.05, 1.0])
    room = 2
    exact = np.zeros(len(pi))
    for taken in itertools.product([0, 1], repeat=len(pi)):
        chance = np.prod([p if t else 1 - p for p, t in zip(pi, taken, strict=True)])
        drawn = [i for i, t in enumerate(taken) if t]
        for i in drawn:
            exact[i] += chance * min(1.0, room / len(drawn))
    assert pi * kept_share(pi, room=room) == pytest.approx(exact, abs=1e-9)
    assert kept_share(pi, room=50).tolist() == [1.0] * len(pi)  # no cut possible: π unchanged


def test_a_draw_never_exceeds_its_room_and_records_probabilities_the_frequencies_match():
    rng = np.random.default_rng(7)
    pi = inclusion_probabilities(rng.uniform(size=40) ** 2, expected=6.0, uniform_share=0.2)
    recorded = pi * kept_share(pi, room=4)
    counts = np.zeros(40)
    reps = 5000
    for _ in range(reps):
        draw = poisson_draw(pi, room=4, rng=rng)
        assert draw.indices.size <= 4 and draw.drawn >= draw.indices.size
        assert draw.probabilities == pytest.approx(recorded[draw.indices])
        counts[draw.indices] += 1
    standard_error = np.sqrt(recorded * (1 - recorded) / reps)
    assert np.abs(counts / reps - recorded).max() < 5 * standard_error.max()


@pytest.mark.parametrize("room", [1000, 5], ids=["no cut", "cut to the room"])
def test_the_horvitz_thompson_mean_over_the_draws_is_unbiased(room):
    """The mean of y over all items, estimated as (1/N) Σ y_i ξ_i / π_i from each draw: the average over many draws
    is the true mean within Monte-Carlo error — also when draws are cut to the room, thanks to the recorded π."""
    rng = np.random.default_rng(3)
    n = 200
    uncertainty = rng.uniform(size=n)
    y = (rng.uniform(size=n) < uncertainty).astype(float)  # errors where the LLM is unsure, as in routing
    pi = inclusion_probabilities(np.sqrt(uncertainty), expected=8.0, uniform_share=0.5)
    estimates, unadjusted, naive = [], [], []
    for _ in range(5000):
        draw = poisson_draw(pi, room=room, rng=rng)
        estimates.append((y[draw.indices] / draw.probabilities).sum() / n)
        unadjusted.append((y[draw.indices] / pi[draw.indices]).sum() / n)
        if draw.indices.size:
            naive.append(y[draw.indices].mean())
    estimates = np.array(estimates)
    standard_error = estimates.std() / np.sqrt(len(estimates))
    assert abs(estimates.mean() - y.mean()) < 4 * standard_error
    if room < 8:  # the cut needs the recorded π: the drawing π would undercount
        assert np.mean(unadjusted) < y.mean() - 10 * standard_error
    # a plain mean over the drawn items is biased here (draws lean towards the uncertain, error-prone items)
    assert np.mean(naive) > y.mean() + 0.03


# ------------------------------------------------------------------------------ the planner

PROBS = np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3], [0.6, 0.4], [0.99, 0.01]] * 20)


def test_the_audit_slice_draws_over_every_candidate_with_its_probability_in_the_reason():
    candidates = np.arange(0, 100, 2)
    picks = plan_audit_slice(probs=PROBS, candidates=candidates, size=20, audit_share=0.5, room=20, seed=1)
    assert picks and all(p.is_audit and 0 < p.inclusion_probability < 1 for p in picks)
    assert {p.index for p in picks} <= set(candidates.tolist())
    assert all(re.fullmatch(r"audit draw \(π = [0-9.e-]+\)", p.reason) for p in picks)
    assert plan_audit_slice(probs=PROBS, candidates=candidates, size=20, audit_share=0.0, room=20) == []


def test_the_audit_slice_averages_its_share_of_the_batch():
    sizes = [
        len(
            plan_audit_slice(
                probs=PROBS, candidates=np.arange(100), size=20, audit_share=0.1, room=20, seed=s
            )
        )
        for s in range(400)
    ]
    assert np.mean(sizes) == pytest.approx(2.0, abs=0.25)


def test_an_estimation_batch_is_one_poisson_draw_of_the_batch_size_on_average():
    sizes = []
    for seed in range(300):
        picks = plan_estimation_batch(probs=PROBS, candidates=np.arange(100), size=10, room=100, seed=seed)
        assert all(p.is_audit and p.reason.startswith("sampled for estimation (π = ") for p in picks)
        sizes.append(len(picks))
    assert np.mean(sizes) == pytest.approx(10.0, abs=0.6) and min(sizes) < 10 < max(sizes)
    capped = plan_estimation_batch(probs=PROBS, candidates=np.arange(100), size=10, room=3, seed=0)
    assert len(capped) <= 3


def test_deterministic_picks_have_probability_one_and_random_ones_size_over_candidates():
    entropy = plan_routing_batch(strategy="entropy", probs=PROBS, candidates=np.arange(100), size=4)
    assert [p.inclusion_probability for p in entropy] == [1.0] * 4 and not any(p.is_audit for p in entropy)
    random = plan_routing_batch(strategy="random", probs=PROBS, candidates=np.arange(80), size=4, seed=2)
    assert [p.inclusion_probability for p in random] == [0.05] * 4


def test_audit_draws_are_spread_among_the_strategys_picks_by_priority():
    picks = [RoutingPick(i, float(10 - i), f"entropy {i}") for i in range(6)]
    draws = [RoutingPick(50, 0.3, "audit draw (π = 0.3)", 0.3, True), RoutingPick(51, 0.1, "x", 0.1, True)]
    merged = merge_audit_picks(draws, picks)
    audit = [p for p in merged if p.is_audit]
    assert [p.priority for p in audit] == [10.0, 7.0]  # beside picks 0 and 3, not all at the end
    assert [p.inclusion_probability for p in audit] == [0.3, 0.1]
    assert merge_audit_picks(draws, []) == draws


# ------------------------------------------------------------------------------ the routing service


def label_samples(project, count: int) -> list[Sample]:
    samples = [Sample.objects.create(project=project, text=f"film review number {i}") for i in range(count)]
    confidences = [0.5 + 0.49 * ((i * 37) % count) / count for i in range(count)]
    llm_annotations_record(
        samples=samples,
        readings=[
            LabelReading("positive", {"positive": c, "negative": 1 - c}, True, confidence=c)
            for c in confidences
        ],
        codebook=project.codebook,
        method=LabelMethod.IMPORTED,
        model_name="test",
        run_ref="test",
    )
    return samples


def policy(project, **fields) -> RoutingPolicy:
    routing = routing_policy_for(project=project)
    for name, value in fields.items():
        setattr(routing, name, value)
    routing.save()
    return routing


@pytest.mark.parametrize(
    "strategy",
    ["random", "least_confidence", "margin", "entropy", "coannotating", "kmeans", "votek", "learned"],
)
def test_every_strategy_records_probabilities_and_keeps_an_audit_slice(project, strategy):
    label_samples(project, 60)
    policy(project, strategy=strategy, budget_kind="count", budget_count=40, batch_size=20, audit_share=0.5)
    tasks = routing_route_next_batch(project=project)
    assert len(tasks) == 20 and len({t.sample_id for t in tasks}) == 20
    audit = [t for t in tasks if t.is_audit]
    picked = [t for t in tasks if not t.is_audit]
    assert audit and all(0 < t.inclusion_probability < 1 and "audit draw (π = " in t.reason for t in audit)
    # the strategy fills the rest; a random fill picks uniformly among the candidates the draw left
    expected = len(picked) / (60 - len(audit)) if strategy == "random" else 1.0
    assert all(t.inclusion_probability == pytest.approx(expected) for t in picked)
    assert all(t.kind == TaskKind.ROUTED and t.strategy == strategy for t in tasks)


def test_cold_start_batches_record_probabilities_too(project):
    label_samples(project, 30)
    policy(
        project,
        strategy="entropy",
        cold_start_size=10,
        cold_start_strategy="kmeans",
        budget_kind="count",
        budget_count=20,
        batch_size=10,
        audit_share=0.5,
    )
    tasks = routing_route_next_batch(project=project)
    assert len(tasks) == 10 and {t.kind for t in tasks} == {TaskKind.COLD_START}
    assert all(t.inclusion_probability == 1.0 for t in tasks if not t.is_audit)
    assert all(0 < t.inclusion_probability < 1 for t in tasks if t.is_audit)


def test_an_audit_share_of_zero_routes_no_audit_draws(project):
    label_samples(project, 40)
    policy(project, strategy="entropy", budget_kind="count", budget_count=20, batch_size=20, audit_share=0.0)
    tasks = routing_route_next_batch(project=project)
    assert len(tasks) == 20 and not any(t.is_audit for t in tasks)
    assert {t.inclusion_probability for t in tasks} == {1.0}


def test_an_estimation_batch_follows_the_learned_routers_predicted_error_once_given():
    """π ∝ √(p (1 − p)) over the uniform floor: items the router is unsure about (p near ½) are drawn most often,
    items it is sure of either way (p near 0 or 1) least; the reason says where π came from."""
    predicted = np.tile([0.5, 0.02, 0.98, 0.2], 25)
    counts = np.zeros(100)
    for seed in range(400):
        picks = plan_estimation_batch(
            probs=PROBS, candidates=np.arange(100), size=10, room=100, predicted_error=predicted, seed=seed
        )
        assert all(p.reason.startswith("sampled for estimation by the learned router") for p in picks)
        assert all(0 < pick.inclusion_probability < 1 for pick in picks)
        for pick in picks:
            counts[pick.index] += 1
    by_kind = counts.reshape(25, 4).sum(axis=0)
    assert by_kind[0] > by_kind[3] > by_kind[1] and by_kind[3] > by_kind[2]
    assert abs(by_kind[1] - by_kind[2]) < 0.35 * by_kind[1]  # p and 1 − p are as uncertain


def test_the_estimation_strategy_routes_one_poisson_draw_within_the_budget(project):
    label_samples(project, 80)
    routing = policy(project, strategy="estimation", budget_kind="count", budget_count=30, batch_size=12)
    preview = routing_preview(project=project, policy=routing, limit=100)
    tasks = routing_route_next_batch(project=project)
    assert tasks and len(tasks) <= 30
    assert sorted(t.sample_id for t in tasks) == sorted(row.sample.pk for row in preview)  # as previewed
    assert all(t.is_audit and 0 < t.inclusion_probability <= 1 for t in tasks)
    assert all(t.reason.startswith("sampled for estimation (π = ") for t in tasks)
    assert {t.strategy for t in tasks} == {"estimation"}


def test_the_estimation_strategy_draws_by_the_learned_routers_predicted_error_once_it_has_learned(
    project, annotator, django_capture_on_commit_callbacks
):
    """Adaptive CDI: the first batch is drawn by the LLM's confidence; once the answers teach the router (here the
    LLM is wrong on every other item of a batch), the next batch's π follows its predicted error."""
    from annotation.review.queue import review_next

    label_samples(project, 120)
    policy(project, strategy="estimation", budget_kind="count", budget_count=100, batch_size=50)
    first = routing_route_next_batch(project=project)
    assert first and all(t.reason.startswith("sampled for estimation (π = ") for t in first)
    for answered in range(len(first)):  # the last answer routes the next batch by itself
        assignment = review_next(project=project, annotator=annotator)
        assert assignment.task.pk in {t.pk for t in first}
        with django_capture_on_commit_callbacks(execute=True):
            review_answer_submit(assignment=assignment, label="negative" if answered % 2 else "positive")
    second = ReviewTask.objects.filter(project=project).exclude(pk__in=[t.pk for t in first])
    assert second.exists() and all(
        t.reason.startswith("sampled for estimation by the learned router's predicted error (π = ")
        and 0 < t.inclusion_probability < 1
        for t in second
    )


def test_tasks_made_before_probabilities_were_recorded_stay_without_one(project):
    (sample,) = label_samples(project, 1)
    task = ReviewTask.objects.create(
        project=project, sample=sample, kind=TaskKind.ROUTED, reason="entropy 0.69"
    )
    task.refresh_from_db()
    assert task.inclusion_probability is None and task.is_audit is False


def test_annotators_cannot_tell_audit_items_but_the_lead_can(
    project, lead, annotator, django_capture_on_commit_callbacks
):
    annotator_client, lead_client = Client(), Client()  # the conftest clients share one session
    annotator_client.force_login(annotator)
    lead_client.force_login(lead)
    review_gold_rate_set(project=project, gold_rate=0.0)
    label_samples(project, 30)
    policy(project, strategy="entropy", budget_kind="count", budget_count=10, batch_size=10, audit_share=0.5)
    tasks = routing_route_next_batch(project=project)
    audit_ids = {t.sample_id for t in tasks if t.is_audit}
    assert audit_ids
    queue = reverse("annotation:review_queue", args=[project.id])
    seen_audit = 0
    for _ in range(len(tasks)):
        page = annotator_client.get(queue).content.decode()
        assignment = Assignment.objects.get(
            task__project=project, annotator=annotator, status=AssignmentStatus.RESERVED
        )
        seen_audit += assignment.task.sample_id in audit_ids
        assert assignment.task.sample.text in page
        assert not re.search(r"audit|π|sampled for estimation|inclusion", page, re.IGNORECASE)
        with django_capture_on_commit_callbacks(execute=True):
            review_answer_submit(assignment=assignment, label="negative")
    assert seen_audit == len(audit_ids)
    routed_page = lead_client.get(reverse("annotation:routed_items", args=[project.id])).content.decode()
    assert "audit draw (π = " in routed_page


def routing_form_data(**overrides) -> dict:
    """Every field of the routing form, the quality-target ones at their defaults."""
    defaults = RoutingPolicy()
    data = {
        "budget_kind": "count",
        "budget_count": 10,
        "budget_share": 0.2,
        "strategy": "estimation",
        "batch_size": 5,
        "annotators_per_item": 1,
        "cold_start_size": 0,
        "cold_start_strategy": "random",
        "audit_share": 0.2,
        "is_active": "on",
        "target_error": defaults.target_error,
        "target_confidence": defaults.target_confidence,
        "calibration_size": defaults.calibration_size,
        "certify_score": defaults.certify_score,
    }
    data.update(overrides)
    return data


def test_the_form_takes_an_audit_share_from_zero_to_a_half_and_offers_estimation(project):
    form = RoutingPolicyForm(routing_form_data(), instance=routing_policy_for(project=project))
    assert form.is_valid(), form.errors
    assert (
        form.save().audit_share == 0.2 and RoutingPolicy.objects.get(project=project).strategy == "estimation"
    )
    assert "Sample for estimation" in form["strategy"].help_text
    for bad in (0.6, -0.1):
        form = RoutingPolicyForm(
            routing_form_data(audit_share=bad), instance=routing_policy_for(project=project)
        )
        assert not form.is_valid() and "audit share" in str(form.errors["audit_share"])
    data = routing_form_data()
    del data["audit_share"]  # a form without the field keeps the policy's share
    form = RoutingPolicyForm(data, instance=routing_policy_for(project=project))
    assert form.is_valid(), form.errors
    assert form.save().audit_share == 0.2


def test_the_routing_page_shows_the_audit_share_field(lead_client, project):
    page = lead_client.get(reverse("annotation:routing_policy", args=[project.id])).content.decode()
    assert 'name="audit_share"' in page and "Sample for estimation" in page
