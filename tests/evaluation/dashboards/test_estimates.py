"""The unbiased estimates page (Evaluation → Unbiased estimates): CDI and PPI++ figures equal the estimators on
hand-built arrays and hand-computed intervals on a six-item project, a project without an audit sample says so
and shows no interval, routed-only figures are labelled biased, leads only, and the demo project renders."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from annotation.models import ReviewTask
from evaluation.dashboards.estimates import NO_AUDIT_MESSAGE, estimates_alpha, project_estimates
from evaluation.estimates_core import AuditBatch, batched_estimates
from evaluation.estimation import ppi_estimate
from synthstudio.models import FinalSource, HumanAnnotation, HumanSource, LabelMethod, LLMAnnotation, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD

Z90 = 1.6448536269514722

# (LLM label, confidence, human label or None, recorded π or None)
SIX = [
    ("positive", 0.9, "negative", 1.0),  # deterministic pick: the LLM was wrong
    ("negative", 0.6, "negative", 1.0),  # deterministic pick: right
    ("positive", 0.8, "positive", 0.5),  # audit draws
    ("positive", 0.7, "negative", 0.5),
    ("negative", 0.95, "negative", 0.5),
    ("positive", 0.85, None, None),  # no human saw it
]


def build(project, annotator, rows, *, method=LabelMethod.IMPORTED, batch=1):
    """The samples with their LLM labels, then one routing batch's tasks, then the answers (in that order in
    time, as routing makes them: the batch draws from items that exist and no human has answered)."""
    samples = []
    for index, (label, confidence, _human, _pi) in enumerate(rows):
        sample = Sample.objects.create(project=project, text=f"review number {index}")
        other = "negative" if label == "positive" else "positive"
        LLMAnnotation.objects.create(
            sample=sample,
            label=label,
            confidence=confidence,
            method=method,
            distribution={label: confidence, other: 1 - confidence},
        )
        samples.append(sample)
    for sample, (_label, _c, human, pi) in zip(samples, rows, strict=True):
        if pi is not None:
            ReviewTask.objects.create(
                project=project,
                sample=sample,
                batch=batch,
                inclusion_probability=pi,
                is_audit=pi < 1,
                answers_count=1 if human else 0,
                is_open=not human,
            )
    for sample, (label, _c, human, _pi) in zip(samples, rows, strict=True):
        if human is not None:
            HumanAnnotation.objects.create(
                sample=sample, annotator=annotator, label=human, source=HumanSource.REVIEW
            )
            sample.final_label, sample.final_source = human, FinalSource.HUMAN
        else:
            sample.final_label, sample.final_source = label, FinalSource.LLM
        sample.save()
    return samples


def cdi_by_hand(f, y, drawn, pi):
    """One batch drawing over every item: g = a + λ f fitted to the draws (equal π: ordinary least squares),
    θ = (1/N) [Σ g + Σ_drawn (y − g)/π], variance (1/N²) Σ_drawn (y − g)² (1 − π)/π²."""
    slope, intercept = np.polyfit(f[drawn], y, 1)
    g = intercept + slope * f
    residual = y - g[drawn]
    point = (g.sum() + np.sum(residual / pi)) / f.size
    half = Z90 * math.sqrt(np.sum(residual**2 * (1 - pi) / pi**2)) / f.size
    return point, point - half, point + half


def row_of(estimates: dict, section: str, name: str) -> dict:
    [found] = [
        row for s in estimates["sections"] if s["key"] == section for row in s["rows"] if row["name"] == name
    ]
    return found


LLM_RIGHT = "LLM labels right (all labels)"
FINAL_RIGHT = "Final labels right (all labels)"


def test_with_certain_picks_and_audit_draws_the_accuracy_is_cdi_and_humans_only_is_hand_computed(
    project, annotator
):
    build(project, annotator, SIX * 4)
    estimates = project_estimates(project=project, alpha=0.1)
    assert estimates["enough_audit"] and estimates["audit_answers"] == 12 and estimates["population"] == 24
    row = row_of(estimates, "accuracy", LLM_RIGHT)
    assert row["method"] == "CDI"
    # only the batch's draws speak for the items no human saw; the certain picks are candidates like the rest
    drawn = np.flatnonzero(np.tile([0, 0, 1, 1, 1, 0], 4))
    point, low, high = cdi_by_hand(
        np.tile([0.9, 0.6, 0.8, 0.7, 0.95, 0.85], 4), np.tile([1.0, 0.0, 1.0], 4), drawn, np.full(12, 0.5)
    )
    assert (row["estimate"]["point"], row["estimate"]["low"]) == pytest.approx((point, max(0.0, low)))
    assert row["estimate"]["high"] == pytest.approx(min(1.0, high))
    # humans only, by hand: g = a, the draws' mean 2/3, so θ = 2/3 + 0; variance = 2·4·(1/9 + 4/9 + 1/9)/24²
    human = row["human_only"]
    half = Z90 * math.sqrt(1 / 108)
    assert human["point"] == pytest.approx(2 / 3)
    assert (human["low"], human["high"]) == pytest.approx((2 / 3 - half, 2 / 3 + half))
    assert human["n"] == 12
    # routed items only: 12 of the 20 answered items have a right LLM label — the biased figure
    assert row["routed_only"] == {"value": pytest.approx(0.6), "n": 20}
    # final labels: humans corrected 8 of the LLM's labels (items 0 and 3 of each block): + 8/24, same width
    final = row_of(estimates, "accuracy", FINAL_RIGHT)
    assert final["estimate"]["point"] == pytest.approx(min(1.0, point + 8 / 24))
    assert final["human_only"]["point"] == pytest.approx(2 / 3 + 8 / 24)
    # per label, too few audit answers: 8 where the LLM said positive, 4 where it said negative
    precision = row_of(estimates, "accuracy", "LLM labels right where the LLM said “negative”")
    assert precision["estimate"] is None and "4 audit answers so far" in precision["reason"]


def test_prevalence_uses_the_llm_distribution_as_the_prediction(project, annotator):
    build(project, annotator, SIX * 4)
    row = row_of(project_estimates(project=project, alpha=0.1), "prevalence", "negative")
    point, _low, _high = cdi_by_hand(
        np.tile([0.1, 0.6, 0.2, 0.3, 0.95, 0.15], 4),
        np.tile([0.0, 1.0, 1.0], 4),
        np.flatnonzero(np.tile([0, 0, 1, 1, 1, 0], 4)),
        np.full(12, 0.5),
    )
    assert row["estimate"]["point"] == pytest.approx(point)
    assert row["final_share"] == pytest.approx(4 / 6) and row["llm_share"] == pytest.approx(2 / 6)
    assert row["routed_only"]["value"] == pytest.approx(4 / 5)


def test_a_uniform_audit_sample_gives_ppi_and_the_classical_human_only_interval(project, annotator):
    rows = [(label, confidence, human, 0.25 if pi == 0.5 else None) for label, confidence, human, pi in SIX]
    rows = [(label, c, h if pi else None, pi) for label, c, h, pi in rows]  # only the audit items answered
    build(project, annotator, rows * 4)
    row = row_of(project_estimates(project=project, alpha=0.1), "accuracy", LLM_RIGHT)
    assert row["method"] == "PPI++"
    expected = ppi_estimate(
        np.tile([1.0, 0.0, 1.0], 4), np.tile([0.8, 0.7, 0.95], 4), np.tile([0.9, 0.6, 0.85], 4), alpha=0.1
    )
    assert row["estimate"]["point"] == pytest.approx(min(1.0, max(0.0, expected.point)))
    assert row["estimate"]["high"] == pytest.approx(min(1.0, expected.high))
    # humans only: mean 2/3, standard deviation √(2/9) (ddof 0) over √12
    half = Z90 * math.sqrt(2 / 9) / math.sqrt(12)
    assert row["human_only"]["point"] == pytest.approx(2 / 3)
    assert row["human_only"]["low"] == pytest.approx(2 / 3 - half)


def test_once_the_router_can_learn_the_accuracy_leans_on_its_cross_fitted_prediction(project, annotator):
    """With enough answers, "the LLM is right" is predicted by the learned router cross-fitted on the answers
    (annotation.routing.services.cross_fitted_error_by_sample), not by the LLM's confidence; the interval is
    PPI++ over that prediction. Here the LLM is confidently wrong on every "positive" it gives, which its
    confidence cannot tell and the router learns."""
    from annotation.routing.services import cross_fitted_error_by_sample

    rows = []
    for index in range(100):
        label = "positive" if index % 2 else "negative"
        human = "negative" if index < 60 else None  # the LLM is right on its "negative"s only
        rows.append((label, 0.9, human, 0.6 if index < 60 else None))
    samples = build(project, annotator, rows)
    estimates = project_estimates(project=project, alpha=0.1)
    assert estimates["right_predicted_by"] == "the learned router (cross-fitted on the human answers)"
    row = row_of(estimates, "accuracy", LLM_RIGHT)
    error = cross_fitted_error_by_sample(project=project)
    f = np.array([1 - error[s.pk] for s in samples])
    y = np.array([1.0 if index % 2 == 0 else 0.0 for index in range(60)])
    expected = ppi_estimate(y, f[:60], f[60:], alpha=0.1)
    assert row["method"] == "PPI++"
    assert row["estimate"]["point"] == pytest.approx(min(1.0, max(0.0, expected.point)))
    assert row["estimate"]["low"] == pytest.approx(max(0.0, expected.low))
    assert f[1::2].mean() < 0.5 < f[0::2].mean()  # it learned that the LLM's "positive" is wrong
    # the confidence, all 0.9, says nothing: the classical interval is what PPI++ gives with it
    assert (
        row["estimate"]["high"] - row["estimate"]["low"]
        < row["human_only"]["high"] - row["human_only"]["low"]
    )


def test_before_the_router_can_learn_the_accuracy_leans_on_the_llms_confidence(project, annotator):
    build(project, annotator, SIX)
    assert project_estimates(project=project, alpha=0.1)["right_predicted_by"] == "the LLM's confidence"


def test_without_an_audit_sample_the_page_says_so_and_shows_no_interval(lead_client, project, annotator):
    # routed before π was recorded (None) and one certain pick: nothing speaks for the unseen items
    rows = [(label, c, h, None if pi != 1.0 else 1.0) for label, c, h, pi in SIX]
    build(project, annotator, rows * 4)
    estimates = project_estimates(project=project, alpha=0.1)
    assert not estimates["has_audit"]
    for section in estimates["sections"]:
        for row in section["rows"]:
            assert row["estimate"] is None and row["human_only"] is None and row["width_ratio"] is None
    response = lead_client.get(reverse("evaluation:metrics_estimates", args=[project.id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert NO_AUDIT_MESSAGE in body
    accuracy = body.split('id="estimates-accuracy"')[1].split("</section>")[0]
    assert "[" not in accuracy.split("<tbody>")[1]  # no interval anywhere in the rows
    assert '60.0% <span class="warn">biased</span>' in accuracy  # the routed-only figure, labelled biased


def test_a_handful_of_audit_answers_gives_no_interval_yet(lead_client, project, annotator):
    # three audit answers: CDI's two tuned coefficients would fit them almost exactly (a variance near 0)
    build(project, annotator, SIX)
    estimates = project_estimates(project=project, alpha=0.1)
    assert estimates["has_audit"] and not estimates["enough_audit"]
    row = row_of(estimates, "accuracy", LLM_RIGHT)
    assert (
        row["estimate"] is None
        and row["reason"] == "only 3 audit answers so far: 10 are needed for an interval"
    )
    body = lead_client.get(reverse("evaluation:metrics_estimates", args=[project.id])).content.decode()
    assert 'id="few-audit"' in body and "are biased" in body


def test_the_page_shows_estimates_with_intervals_and_the_biased_routed_figure(
    lead_client, project, annotator
):
    build(project, annotator, SIX * 4)
    url = reverse("evaluation:metrics_estimates", args=[project.id])
    body = lead_client.get(url, {"confidence": "95"}).content.decode()
    assert NO_AUDIT_MESSAGE not in body
    assert "How to read this page" in body
    assert "95% interval" in body
    accuracy = body.split('id="estimates-accuracy"')[1].split("</section>")[0]
    assert "CDI" in accuracy and "biased" in accuracy
    assert "66.7% [" in accuracy  # humans only, 2/3 as hand-computed above


def test_the_confidence_level_is_read_from_the_query_and_bad_values_fall_back_to_90():
    assert estimates_alpha("95") == pytest.approx(0.05)
    assert estimates_alpha(None) == pytest.approx(0.10)
    assert estimates_alpha("banana") == pytest.approx(0.10)
    assert estimates_alpha("100") == pytest.approx(0.10)


def test_offline_llm_labels_are_marked_and_label_text_is_escaped(lead_client, project, annotator):
    samples = build(project, annotator, SIX * 4, method=LabelMethod.OFFLINE)
    LLMAnnotation.objects.filter(sample=samples[5]).update(label="<script>x</script>")
    body = lead_client.get(reverse("evaluation:metrics_estimates", args=[project.id])).content.decode()
    assert 'id="offline-note"' in body and 'class="badge offline"' in body
    assert "<script>x</script>" not in body and "&lt;script&gt;x&lt;/script&gt;" in body


@pytest.mark.parametrize(("who", "status"), [("annotator", 403), ("outsider", 404)])
def test_the_page_is_for_leads_only(request, project, who, status):
    client = Client()
    client.force_login(request.getfixturevalue(who))
    assert client.get(reverse("evaluation:metrics_estimates", args=[project.id])).status_code == status


def test_the_evaluation_tabs_link_the_page(lead_client, project):
    body = lead_client.get(reverse("evaluation:metrics_agreement", args=[project.id])).content.decode()
    assert reverse("evaluation:metrics_estimates", args=[project.id]) in body


@pytest.fixture
def demo(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path  # the demo keeps its logins under var/
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("demo", stdout=io.StringIO())
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="demo_lead")


def test_the_page_renders_for_the_demo_projects(client, demo):
    client.force_login(demo)
    project_ids = list(demo.memberships.values_list("project_id", flat=True))
    assert project_ids
    for project_id in project_ids:
        response = client.get(reverse("evaluation:metrics_estimates", args=[project_id]))
        assert response.status_code == 200
        body = response.content.decode()
        assert "Unbiased estimates" in body and "How to read this page" in body
        assert 'class="badge offline"' in body  # the demo's labels come from the offline labeller
        estimates = response.context["estimates"]
        assert estimates["population"] > 0
        keys = {section["key"] for section in estimates["sections"]}
        assert keys == {"prevalence", "accuracy", "agreement", "acceptability"}
        if not estimates["has_audit"]:
            assert NO_AUDIT_MESSAGE in body


def test_by_simulation_batch_by_batch_the_intervals_cover_and_the_routed_only_figure_is_biased():
    """Routing as annotation.routing.services does it — per batch an audit draw of 5 over the items not routed
    yet (π half uniform, half ∝ √(1 − confidence)), then the 45 least confident — over 20 batches: the estimate
    is unbiased and covers about 90 % of the time; the mean over routed items misses by far."""
    rng = np.random.default_rng(7)
    trials, size, covered, errors, routed_bias = 150, 2000, 0, [], []
    for _ in range(trials):
        confidence = rng.beta(5, 2, size=size)
        right = (rng.uniform(size=size) < confidence).astype(float)
        routed, batches = np.zeros(size, dtype=bool), []
        for _batch in range(20):
            candidates = np.flatnonzero(~routed)
            doubt = np.sqrt(1 - confidence[candidates])
            pi = 0.5 * 5 / candidates.size + 0.5 * 5 * doubt / doubt.sum()
            hit = rng.uniform(size=candidates.size) < pi
            mask = np.zeros(size, dtype=bool)
            mask[candidates] = True
            batches.append(AuditBatch(routed.copy(), mask, candidates[hit], pi[hit]))
            routed[candidates[hit]] = True
            rest = np.flatnonzero(~routed)
            routed[rest[np.argsort(confidence[rest])[: 50 - int(hit.sum())]]] = True
        result = batched_estimates(confidence, np.where(routed, right, np.nan), batches, alpha=0.1)
        covered += result.estimate.low <= right.mean() <= result.estimate.high
        errors.append(result.estimate.point - right.mean())
        routed_bias.append(result.routed_only.point - right.mean())
    assert covered / trials >= 0.8  # measured 0.85 at nominal 0.90 (about 100 draws); binomial slack
    assert abs(np.mean(errors)) < 0.01
    assert np.mean(routed_bias) < -0.08  # routed items look far worse than the corpus


def test_two_batches_each_speak_for_their_own_candidates(project, annotator):
    """Batch 2 draws over what batch 1 left; its estimate counts batch 1's answers as known. With the same π in
    both, treating the draws as one sample would count the unrouted items twice."""
    first = [(label, c, h, pi) for label, c, h, pi in SIX * 4]
    samples = build(project, annotator, first)
    later = build(
        project,
        annotator,
        [("positive", 0.8, "positive", 0.5), ("negative", 0.9, "negative", 0.5)] * 6,
        batch=2,
    )
    estimates = project_estimates(project=project, alpha=0.1)
    assert estimates["audit_answers"] == 24 and estimates["audit_drawn"] == 24
    row = row_of(estimates, "accuracy", LLM_RIGHT)
    assert row["method"] == "CDI" and row["estimate"] is not None
    assert row["estimate"]["n"] == 24 and len(samples) + len(later) == estimates["population"]
    assert 0.0 <= row["estimate"]["low"] <= row["estimate"]["point"] <= row["estimate"]["high"] <= 1.0


@pytest.mark.browser
def test_a_lead_reads_the_estimates_in_the_browser_and_switches_to_95_percent(
    browser_page, live_server, lead, project, annotator
):
    build(project, annotator, SIX * 4, method=LabelMethod.OFFLINE)
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/evaluation/estimates/")  # the other tabs recompute
    assert page.locator("nav.tabs a.active").inner_text() == "Unbiased estimates"
    assert page.locator("#how-to-read").is_visible()
    assert "CDI" in page.locator("#estimates-accuracy").inner_text()
    page.select_option("select[name=confidence]", "95")
    page.click("#how-to-read button")
    page.wait_for_url("**confidence=95**")
    assert "95% interval" in page.locator("#estimates-accuracy thead").inner_text()
    assert page.locator("#offline-note").is_visible()
    screenshot(page, "evaluation-estimates")


def test_an_item_answered_before_a_batch_without_a_value_for_the_statistic_counts_as_unknown():
    f = np.linspace(0.2, 0.9, 30)
    y = np.where(np.arange(30) < 12, np.tile([1.0, 0.0, 1.0], 10)[:30], np.nan)
    known = np.zeros(30, dtype=bool)
    known[25] = True  # answered before the batch, but its answer has no value here (y is NaN)
    batch = AuditBatch(known, ~known, np.arange(12), np.full(12, 0.4))
    result = batched_estimates(f, y, [batch], alpha=0.1)
    assert result.estimate is not None and math.isfinite(result.estimate.point)
    assert math.isfinite(result.human_only.high)


def test_batches_are_weighted_by_the_variance_their_design_predicts(monkeypatch):
    """Batch weights ∝ 1 / Σ_drawn q (1 − π) / π², q = ĝ(1 − ĝ): exact on two hand-made batches; a batch whose
    draws the prediction is sure about counts more, and a guess outside [0, 1] is clipped, not negative."""
    from evaluation import estimates_core
    from evaluation.estimates_core import batch_weights

    monkeypatch.setattr(estimates_core, "MIN_DRAWS_FOR_WEIGHTS", 1)  # two draws a batch: exact arithmetic
    guess = np.array([0.5, 0.5, 0.9, 0.9])
    known = np.zeros(4, dtype=bool)
    first = AuditBatch(known, ~known, np.array([0, 1]), np.array([0.5, 0.5]))
    second = AuditBatch(known, ~known, np.array([2, 3]), np.array([0.5, 0.5]))
    # P = Σ q (1 − π) / π²: 2 × 0.25 × 0.5 / 0.25 = 1.0 and 2 × 0.09 × 0.5 / 0.25 = 0.36
    expected = np.array([1 / 1.0, 1 / 0.36]) / (1 / 1.0 + 1 / 0.36)
    assert np.allclose(batch_weights([first, second], guess), expected)
    clipped = batch_weights([first, second], np.array([1.2, -0.1, 0.5, 0.5]))
    # q = 0.98 × 0.02 for the first two: P₁ = 2 × 0.0196 × 2 = 0.0784, P₂ = 1.0
    assert np.allclose(clipped, np.array([1 / 0.0784, 1.0]) / (1 / 0.0784 + 1.0))
    monkeypatch.setattr(estimates_core, "MIN_DRAWS_FOR_WEIGHTS", 3)
    assert np.allclose(batch_weights([first, second], guess), [0.5, 0.5])  # too few draws: equal weights
    monkeypatch.setattr(estimates_core, "MIN_DRAWS_FOR_WEIGHTS", 1)
    census = AuditBatch(known, ~known, np.array([2, 3]), np.array([1.0, 1.0]))  # drew every candidate
    assert np.allclose(batch_weights([first, census], guess), [0.5, 0.5])  # no predicted variance: equal
