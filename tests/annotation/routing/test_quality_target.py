"""The quality-target routing mode: a calibration sample with recorded probabilities, then the items above the
certified threshold, then a certificate whose figures hold against the truth; the budget never caps it, and a
later label change makes the certificate stale. Simulated annotators answer with the truth through the review
queue's one answer path (review_next + review_answer_submit), each answer's on-commit hook included."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import LabelCertificate, ReviewTask, RoutingStrategy
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_gold_rate_set, review_next
from annotation.routing import quality_target
from annotation.routing.certificates import certificate_as_dict, certificate_is_stale, final_labels_digest
from annotation.routing.services import (
    routing_after_answer,
    routing_policy_for,
    routing_preview,
    routing_route_next_batch,
)
from synthstudio.models import LabelMethod, Sample

N = 300


def film_reviews(project, *, n: int = N, method: str = LabelMethod.IMPORTED) -> dict[int, str]:
    """n samples labelled "positive" by the LLM with confidences from 0.5 to 1; the truth is "negative" on a
    deterministic share that grows as the confidence falls (≈ 0.9 · (1 − confidence): 11 % wrong overall,
    none above 0.97). Returns {sample id: true label}."""
    samples = Sample.objects.bulk_create(
        Sample(project=project, text=f"film review number {i}") for i in range(n)
    )
    confidences = 0.5 + 0.5 * np.arange(n) / n
    readings = [
        LabelReading("positive", {"positive": float(c), "negative": float(1 - c)}, True, confidence=float(c))
        for c in confidences
    ]
    llm_annotations_record(
        samples=samples,
        readings=readings,
        codebook=project.codebook,
        method=method,
        model_name="test",
        run_ref="test",
    )
    truth = {}
    for i, (sample, confidence) in enumerate(zip(samples, confidences, strict=True)):
        wrong = (i * 7919) % 100 < 100 * 0.9 * (1 - confidence) - 3
        truth[sample.pk] = "negative" if wrong else "positive"
    return truth


def quality_policy(project, **fields):
    policy = routing_policy_for(project=project)
    values = {
        "strategy": RoutingStrategy.QUALITY_TARGET,
        "target_error": 0.1,
        "target_confidence": 0.9,
        "calibration_size": 120,
        "annotators_per_item": 1,
        "budget_kind": "count",
        "budget_count": 5,  # far below what the target needs: it must not cap it
        **fields,
    }
    for name, value in values.items():
        setattr(policy, name, value)
    policy.save()
    return policy


def answer_with_truth(project, annotator, truth, capture) -> int:
    answered = 0
    while (assignment := review_next(project=project, annotator=annotator)) is not None:
        with capture(execute=True):
            review_answer_submit(assignment=assignment, label=truth[assignment.task.sample_id])
        answered += 1
    return answered


@pytest.fixture
def fixed_seed(monkeypatch):
    monkeypatch.setattr(quality_target, "_fresh_seed", lambda: 20260)


@pytest.fixture
def no_gold(project):
    review_gold_rate_set(project=project, gold_rate=0.0)


def realised_error(project, truth) -> float:
    final = dict(Sample.objects.filter(project=project).values_list("pk", "final_label"))
    return sum(final[pk] != label for pk, label in truth.items()) / len(truth)


def test_it_routes_a_calibration_sample_with_its_draw_probabilities_first(project, fixed_seed):
    film_reviews(project)
    policy = quality_policy(project)
    tasks = routing_route_next_batch(project=project)
    state = routing_policy_for(project=project).quality_state
    assert state["phase"] == "calibration" and len(state["draws"]) == 120
    assert len(tasks) == len(set(state["draws"])) > 60  # distinct items, drawn with replacement
    q = np.array(state["q"])
    assert q.sum() == pytest.approx(1.0) and q.min() > 0
    ids = state["items"]
    for task in tasks:
        own_q = q[ids.index(task.sample_id)]
        assert task.is_audit and task.strategy == "quality_target"
        assert task.inclusion_probability == pytest.approx(1 - (1 - own_q) ** 120)
        assert task.reason.startswith("quality target: calibration draw (q = ")
    # uncertainty-proportional half: the least confident items are more likely drawn
    u = np.array(state["u"])
    assert q[np.argmax(u)] > q[np.argmin(u)] * 2.5
    assert policy.budget_items(N) == 5 < len(tasks)


def test_nothing_more_is_routed_while_the_calibration_waits_for_answers(project, fixed_seed):
    film_reviews(project)
    quality_policy(project)
    first = routing_route_next_batch(project=project)
    assert routing_after_answer(project=project) is False
    assert routing_route_next_batch(project=project) == []
    assert ReviewTask.objects.filter(project=project).count() == len(first)


def test_the_preview_shows_the_calibration_draw_and_writes_nothing(project):
    film_reviews(project)
    policy = quality_policy(project)
    rows = routing_preview(project=project, policy=policy, limit=500)
    assert rows and all(row.reason.startswith("quality target: calibration draw") for row in rows)
    assert not ReviewTask.objects.exists() and routing_policy_for(project=project).quality_state == {}


def test_answers_route_the_threshold_batch_then_a_certificate_that_holds_against_the_truth(
    project, annotator, fixed_seed, no_gold, django_capture_on_commit_callbacks
):
    truth = film_reviews(project)
    quality_policy(project)
    calibration = routing_route_next_batch(project=project)
    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)

    state = routing_policy_for(project=project).quality_state
    threshold_tasks = ReviewTask.objects.filter(project=project, is_audit=False)
    assert state["phase"] == "certified" and threshold_tasks.exists()
    # the last calibration answer queued the threshold batch; its last answer, the certificate
    threshold = state["projection"]["threshold"]
    u = dict(zip(state["items"], state["u"], strict=True))
    for task in threshold_tasks:
        assert task.inclusion_probability == 1.0 and u[task.sample_id] >= threshold
        assert task.reason == f"quality target: above the certified threshold u ≥ {threshold:.3f}"
    human = set(ReviewTask.objects.filter(project=project).values_list("sample_id", flat=True))
    assert all(u[pk] < threshold for pk in truth if pk not in human)  # the rest keep the LLM's label

    certificate = LabelCertificate.objects.get(project=project)
    error = realised_error(project, truth)
    assert (certificate.epsilon, certificate.confidence) == (0.1, 0.9)
    assert error <= certificate.upper_bound <= 0.1
    assert certificate.error_ci_low <= error <= certificate.error_ci_high
    assert certificate.error_ci_low <= certificate.estimated_error <= certificate.error_ci_high
    assert certificate.item_count == N and certificate.human_count == len(human) < N
    assert certificate.calibration_count == len(calibration)
    assert certificate.labels_digest == final_labels_digest(project=project)
    assert certificate.is_offline is False
    assert (
        certificate.reviewer_agreement["pairs"] == 0 and certificate.reviewer_agreement["agreement"] is None
    )
    assert certificate.threshold == pytest.approx(threshold)
    data = certificate_as_dict(certificate, stale=certificate_is_stale(certificate))
    assert data["statement"].startswith(
        "At most 10.0% of the final labels are wrong, with probability at least 90%"
    )
    assert f"humans labelled {len(human) / N:.1%} of {N} items" in data["statement"]
    # a quality target saves labels here: 11 % of the LLM's labels are wrong, mostly among the unsure ones
    assert len(human) / N < 0.9


def test_a_label_change_makes_the_certificate_stale_and_the_next_step_re_certifies(
    project, annotator, fixed_seed, no_gold, django_capture_on_commit_callbacks
):
    truth = film_reviews(project)
    quality_policy(project)
    routing_route_next_batch(project=project)
    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)
    certificate = LabelCertificate.objects.get(project=project)
    assert not certificate_is_stale(certificate)

    kept = Sample.objects.filter(project=project, final_source="llm").first()
    Sample.objects.filter(pk=kept.pk).update(final_label="negative")
    assert certificate_is_stale(certificate)
    assert "STALE" in certificate_as_dict(certificate, stale=True)["statement"]

    assert routing_route_next_batch(project=project) == []
    fresh = LabelCertificate.objects.filter(project=project).latest("id")
    assert fresh.pk != certificate.pk and not certificate_is_stale(fresh)
    routing_route_next_batch(project=project)  # still holds: no third certificate
    assert LabelCertificate.objects.filter(project=project).count() == 2


def test_a_stricter_target_routes_more_items_from_the_same_calibration(
    project, annotator, fixed_seed, no_gold, django_capture_on_commit_callbacks
):
    truth = film_reviews(project)
    quality_policy(project)
    routing_route_next_batch(project=project)
    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)
    before = ReviewTask.objects.filter(project=project).count()
    draws = routing_policy_for(project=project).quality_state["draws"]

    quality_policy(project, target_error=0.06)
    more = routing_route_next_batch(project=project)
    assert more and all(
        task.reason.startswith("quality target: above the certified threshold") for task in more
    )
    assert routing_policy_for(project=project).quality_state["draws"] == draws
    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)
    latest = LabelCertificate.objects.filter(project=project).latest("id")
    assert latest.epsilon == 0.06 and latest.human_count == before + len(more)
    assert realised_error(project, truth) <= latest.upper_bound <= 0.06


def test_the_budget_does_not_stop_the_next_step(
    project, annotator, fixed_seed, no_gold, django_capture_on_commit_callbacks
):
    truth = film_reviews(project)
    quality_policy(project, budget_count=1)
    routing_route_next_batch(project=project)
    while (assignment := review_next(project=project, annotator=annotator)) is not None:
        review_answer_submit(assignment=assignment, label=truth[assignment.task.sample_id])
    # the answers' hooks did not run (no on-commit here): the worker's path queues and routes the next batch
    from annotation.routing.services import routing_next_batch_enqueue

    with django_capture_on_commit_callbacks(execute=True):
        assert routing_next_batch_enqueue(project=project) is True
    assert ReviewTask.objects.filter(project=project, is_audit=False).count() > 1


def test_the_learned_score_is_fitted_on_a_prior_weighted_sample_the_bound_never_uses(
    project, annotator, fixed_seed, no_gold, django_capture_on_commit_callbacks
):
    truth = film_reviews(project, n=240)
    quality_policy(project, certify_score="learned", calibration_size=80)
    fit = routing_route_next_batch(project=project)
    # certify.draw_fit_sample: calibration_size distinct items, mostly where the label-free prior (here the
    # LLM's confidence) says the LLM is probably wrong, with recorded π (Rosén's approximation, Σ π ≤ size)
    assert len(fit) == len({task.sample_id for task in fit}) == 80 and all(task.is_audit for task in fit)
    assert all(0 < task.inclusion_probability <= 1 for task in fit)
    assert sum(task.inclusion_probability for task in fit) < 80
    assert fit[0].reason.startswith("quality target: fit sample of the learned score")
    ids = list(Sample.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    fit_positions = np.array([ids.index(task.sample_id) for task in fit])
    # the confidence grows with the position: the less confident an item, the likelier it is in the sample
    pi = np.array([task.inclusion_probability for task in fit])
    assert pi[np.argmin(fit_positions)] > pi[np.argmax(fit_positions)]
    assert fit_positions.mean() < 119.5  # below the uniform sample's expected position
    for _ in fit:
        assignment = review_next(project=project, annotator=annotator)
        with django_capture_on_commit_callbacks(execute=True):
            review_answer_submit(assignment=assignment, label=truth[assignment.task.sample_id])
    state = routing_policy_for(project=project).quality_state
    assert state["phase"] == "calibration" and len(state["draws"]) == 80
    assert (state["uniform_share"], state["power"], state["keep_margin"]) == (0.3, 0.5, 3.0)
    fit_rows = [state["items"].index(task.sample_id) for task in fit]
    assert not set(fit_rows) & set(state["draws"]) and all(state["q"][row] == 0 for row in fit_rows)
    # certify.keepable_items: the items the prediction rules out are never drawn and go to humans
    outside = state["outside"]
    assert not set(outside) & set(state["draws"]) and all(state["q"][row] == 0 for row in outside)
    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)
    certificate = LabelCertificate.objects.get(project=project)
    assert certificate.score == "learned" and certificate.calibration_count >= 80
    assert certificate.details["keep_margin"] == 3.0 and certificate.details["uniform_share"] == 0.3
    assert realised_error(project, truth) <= certificate.upper_bound <= 0.1
    human = set(ReviewTask.objects.filter(project=project).values_list("sample_id", flat=True))
    assert {state["items"][row] for row in outside} <= human


def test_offline_llm_labels_mark_the_certificate_offline(
    project, annotator, fixed_seed, no_gold, django_capture_on_commit_callbacks
):
    truth = film_reviews(project, method=LabelMethod.OFFLINE)
    quality_policy(project)
    routing_route_next_batch(project=project)
    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)
    certificate = LabelCertificate.objects.get(project=project)
    assert certificate.is_offline
    assert "offline stand-in" in certificate_as_dict(certificate, stale=False)["statement"]


def test_the_routing_page_shows_progress_then_the_certificate_with_reviewer_agreement(
    project, annotator, lead_client, fixed_seed, no_gold, django_capture_on_commit_callbacks
):
    truth = film_reviews(project)
    quality_policy(project)
    url = f"/projects/{project.id}/routing/"
    page = lead_client.get(url).content.decode()
    assert 'id="quality-target-fields"' in page and "Not started" in page
    assert 'name="target_error"' in page and 'name="certify_score"' in page

    calibration = routing_route_next_batch(project=project)
    page = lead_client.get(url).content.decode()
    assert f"<strong>0 / {len(calibration)}</strong> items answered (120 random draws)" in page

    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)
    page = lead_client.get(url).content.decode()
    certificate = LabelCertificate.objects.get(project=project)
    statement = certificate_as_dict(certificate, stale=False)["statement"]
    assert statement in page.replace("&#x27;", "'")
    assert "reviewer agreement not measured (no item had two annotators)" in page
    assert "Humans must label <strong>" in page and 'class="badge warn">stale' not in page

    Sample.objects.filter(project=project, final_source="llm").update(final_label="negative")
    page = lead_client.get(url).content.decode()
    assert 'class="badge warn">stale' in page and "STALE: samples or labels changed" in page


def test_the_form_refuses_a_target_outside_its_range(project, lead_client):
    response = lead_client.post(
        f"/projects/{project.id}/routing/",
        {
            "budget_kind": "share",
            "budget_count": 10,
            "budget_share": 0.2,
            "strategy": "quality_target",
            "batch_size": 10,
            "annotators_per_item": 1,
            "cold_start_size": 0,
            "cold_start_strategy": "random",
            "target_error": 1.5,
            "target_confidence": 0.3,
            "calibration_size": 5,
            "certify_score": "llm",
            "save": "1",
        },
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"target_error", "target_confidence", "calibration_size"}
    assert routing_policy_for(project=project).strategy != "quality_target"


def test_a_sample_added_after_the_calibration_goes_to_a_human_before_the_next_certificate(
    project, annotator, fixed_seed, no_gold, django_capture_on_commit_callbacks
):
    truth = film_reviews(project)
    quality_policy(project)
    routing_route_next_batch(project=project)
    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)
    first = LabelCertificate.objects.get(project=project)
    late = Sample.objects.create(project=project, text="a film review written later")
    llm_annotations_record(
        samples=[late],
        readings=[LabelReading("positive", {"positive": 0.99, "negative": 0.01}, True, confidence=0.99)],
        codebook=project.codebook,
        method=LabelMethod.IMPORTED,
        model_name="test",
        run_ref="test",
    )
    assert certificate_is_stale(first)
    (task,) = routing_route_next_batch(project=project)  # confident, but not in the calibrated population
    assert task.sample_id == late.pk and task.reason.startswith("quality target: added after the calibration")
    assert not LabelCertificate.objects.exclude(pk=first.pk).exists()  # not before a human has labelled it
    truth[late.pk] = "positive"
    answer_with_truth(project, annotator, truth, django_capture_on_commit_callbacks)
    fresh = LabelCertificate.objects.latest("id")
    assert fresh.pk != first.pk and fresh.item_count == N + 1 and fresh.human_count == first.human_count + 1
    assert not certificate_is_stale(fresh)
