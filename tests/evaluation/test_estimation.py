"""Unbiased estimates: human-only, PPI++ and CDI intervals (evaluation.estimation)."""

import math

import numpy as np
import pytest

from evaluation.estimation import (
    cdi_estimate,
    cdi_inclusion_probabilities,
    human_only_estimate,
    poisson_sample,
    ppi_estimate,
    routed_only_estimate,
)


def test_human_only_is_the_mean_with_a_normal_interval():
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    estimate = human_only_estimate(y, alpha=0.1)
    half = 1.6448536 * np.std(y) / math.sqrt(5)  # ppi_py's classical interval uses ddof=0
    assert estimate.point == pytest.approx(0.6)
    assert (estimate.low, estimate.high) == pytest.approx((0.6 - half, 0.6 + half), rel=1e-6)
    with pytest.raises(ValueError):
        human_only_estimate(np.array([1.0]), alpha=0.1)


def test_ppi_is_narrower_than_human_only_with_good_predictions_and_no_wider_with_useless_ones():
    rng = np.random.default_rng(0)
    truth = (rng.uniform(size=3000) < 0.3).astype(float)
    good = np.where(rng.uniform(size=3000) < 0.9, truth, 1 - truth)
    useless = rng.uniform(size=3000)
    sample = np.arange(300)
    human = human_only_estimate(truth[sample], alpha=0.1)
    informed = ppi_estimate(truth[sample], good[sample], good[300:], alpha=0.1)
    uninformed = ppi_estimate(truth[sample], useless[sample], useless[300:], alpha=0.1)
    assert informed.width < 0.8 * human.width
    assert uninformed.width <= 1.02 * human.width


def test_inclusion_probabilities_sum_to_the_budget_with_a_floor_and_a_cap():
    u = np.r_[np.zeros(90), np.full(10, 5.0)]
    pi = cdi_inclusion_probabilities(u, budget=20, uniform_share=0.2)
    assert pi.sum() == pytest.approx(20)
    assert pi.max() <= 1.0 and pi[:90].min() == pytest.approx(pi[:90].max()) and pi[:90].min() > 0
    assert (pi[90:] == 1.0).all()  # the uncertain ones wanted more than certainty: capped, excess spread
    with pytest.raises(ValueError):
        cdi_inclusion_probabilities(u, budget=0, uniform_share=0.2)


def test_cdi_with_every_item_sampled_is_exact():
    y = np.array([1.0, 0.0, 1.0, 1.0])
    estimate = cdi_estimate(
        np.array([0.9, 0.2, 0.4, 0.7]), sampled=np.arange(4), y_sampled=y, pi=np.ones(4), alpha=0.1
    )
    assert estimate.point == pytest.approx(0.75) and estimate.width == pytest.approx(0.0)


def test_cdi_rejects_a_sampled_item_with_probability_zero():
    with pytest.raises(ValueError):
        cdi_estimate(
            np.ones(3), sampled=np.array([0, 1]), y_sampled=np.ones(2), pi=np.array([0, 1, 1.0]), alpha=0.1
        )


def test_cdi_covers_the_truth_and_beats_uniform_when_confidence_is_informative():
    rng = np.random.default_rng(4)
    n, budget, trials = 3000, 300, 200
    confidence = rng.uniform(0.5, 1.0, size=n)
    right = (rng.uniform(size=n) < confidence).astype(float)  # calibrated confidence
    pi = cdi_inclusion_probabilities(np.sqrt(confidence * (1 - confidence)), budget=budget, uniform_share=0.2)
    covered, ratios, points = 0, [], []
    for _ in range(trials):
        sampled = poisson_sample(pi, rng=rng)
        estimate = cdi_estimate(confidence, sampled=sampled, y_sampled=right[sampled], pi=pi, alpha=0.1)
        uniform = rng.choice(n, size=budget, replace=False)
        human = human_only_estimate(right[uniform], alpha=0.1)
        covered += estimate.low <= right.mean() <= estimate.high
        ratios.append(estimate.width / human.width)
        points.append(estimate.point)
    assert covered / trials >= 0.9 - 2 * math.sqrt(0.09 / trials)
    assert np.mean(points) == pytest.approx(right.mean(), abs=0.005)
    assert np.mean(ratios) < 0.9


def test_routed_only_has_no_interval():
    estimate = routed_only_estimate(np.array([0.0, 0.0, 1.0]))
    assert (
        estimate.point == pytest.approx(1 / 3)
        and math.isnan(estimate.low)
        and estimate.method == "routed_only"
    )


def test_cdi_with_a_covariate_is_exact_when_everything_is_sampled_and_uses_the_covariate():
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    f = np.array([0.9, 0.2, 0.4, 0.7, 0.5])
    exact = cdi_estimate(
        f, sampled=np.arange(5), y_sampled=y, pi=np.ones(5), alpha=0.1, covariates=y[:, None]
    )
    assert exact.point == pytest.approx(0.6) and exact.width == pytest.approx(0.0)
    # a covariate equal to y: the power-tuned guess reproduces y, the residuals vanish, the interval collapses
    pi = np.full(5, 0.5)
    perfect = cdi_estimate(
        f, sampled=np.array([0, 1, 3]), y_sampled=y[[0, 1, 3]], pi=pi, alpha=0.1, covariates=y
    )
    assert perfect.point == pytest.approx(0.6) and perfect.width == pytest.approx(0.0, abs=1e-9)


def test_cdi_covariate_narrows_the_interval_and_keeps_coverage_in_simulation():
    rng = np.random.default_rng(8)
    n, budget, trials = 3000, 300, 400
    confidence = rng.uniform(0.5, 1.0, size=n)
    hidden = rng.normal(size=n)  # a second signal the confidence misses, known for every item
    right = (rng.uniform(size=n) < np.clip(confidence + 0.3 * hidden, 0.02, 0.98)).astype(float)
    pi = cdi_inclusion_probabilities(np.sqrt(1 - confidence), budget=budget, uniform_share=0.2)
    covered, widths_with, widths_without = 0, [], []
    for _ in range(trials):
        sampled = poisson_sample(pi, rng=rng)
        with_covariate = cdi_estimate(
            confidence, sampled=sampled, y_sampled=right[sampled], pi=pi, alpha=0.1, covariates=hidden
        )
        without = cdi_estimate(confidence, sampled=sampled, y_sampled=right[sampled], pi=pi, alpha=0.1)
        covered += with_covariate.low <= right.mean() <= with_covariate.high
        widths_with.append(with_covariate.width)
        widths_without.append(without.width)
    assert covered / trials >= 0.9 - 2 * math.sqrt(0.09 / trials)
    assert np.mean(widths_with) < 0.95 * np.mean(widths_without)
