"""The PAC-labelling core: IPW terms, betting and CLT bounds, the monotone threshold search, learned scores."""

import math

import numpy as np
import pytest

from annotation.routing.certify import (
    betting_rejects_mean_above,
    betting_upper_bound,
    calibration_probabilities,
    certify_threshold,
    clt_upper_bound,
    draw_calibration,
    draw_fit_sample,
    ipw_terms,
    keepable_items,
    learned_uncertainty,
)


def test_calibration_probabilities_mix_uniform_and_uncertainty():
    q = calibration_probabilities(np.array([0.0, 1.0, 3.0]), uniform_share=0.5)
    assert q == pytest.approx([0.5 / 3, 0.5 / 3 + 0.125, 0.5 / 3 + 0.375])
    assert q.sum() == pytest.approx(1.0)


def test_calibration_probabilities_are_uniform_without_uncertainty_or_with_full_share():
    assert calibration_probabilities(np.zeros(4), uniform_share=0.2) == pytest.approx([0.25] * 4)
    assert calibration_probabilities(np.arange(4.0), uniform_share=1.0) == pytest.approx([0.25] * 4)
    with pytest.raises(ValueError):
        calibration_probabilities(np.arange(4.0), uniform_share=0.0)


def test_ipw_terms_weight_kept_losses_by_inverse_probability():
    sampling = np.array([0.1, 0.2, 0.3, 0.4])
    terms = ipw_terms(
        kept=np.array([True, True, False, True]),
        loss=np.array([1.0, 1.0, 1.0, 0.0]),
        sampling=sampling,
        draws=np.array([0, 1, 2, 3]),
    )
    assert terms == pytest.approx([1 / (4 * 0.1), 1 / (4 * 0.2), 0.0, 0.0])


def test_ipw_mean_is_unbiased_for_the_kept_error():
    rng = np.random.default_rng(3)
    n = 200
    u = rng.uniform(size=n)
    loss = (rng.uniform(size=n) < u).astype(float)
    kept = u < 0.6
    sampling = calibration_probabilities(u, uniform_share=0.3)
    means = []
    for _ in range(400):
        draws = draw_calibration(sampling, draws=100, rng=rng)
        means.append(ipw_terms(kept=kept, loss=loss[draws], sampling=sampling, draws=draws).mean())
    truth = (kept * loss).mean()
    assert np.mean(means) == pytest.approx(truth, abs=0.01)


def test_betting_rejects_a_mean_well_above_the_data_and_not_one_below():
    zeros_and_ones = np.r_[np.zeros(190), np.ones(10)]
    np.random.default_rng(0).shuffle(zeros_and_ones)
    assert betting_rejects_mean_above(zeros_and_ones, mean=0.2, alpha=0.05, upper=1.0)
    assert not betting_rejects_mean_above(zeros_and_ones, mean=0.04, alpha=0.05, upper=1.0)


def test_betting_never_rejects_with_too_few_draws():
    # three zeros cannot make the capital reach 20 against a mean of 0.05
    assert not betting_rejects_mean_above(np.zeros(3), mean=0.05, alpha=0.05, upper=1.0)


def test_betting_upper_bound_lies_above_the_mean_and_tightens_with_more_data():
    rng = np.random.default_rng(1)
    small = (rng.uniform(size=100) < 0.1).astype(float)
    large = (rng.uniform(size=2000) < 0.1).astype(float)
    bound_small = betting_upper_bound(small, alpha=0.05, upper=1.0)
    bound_large = betting_upper_bound(large, alpha=0.05, upper=1.0)
    assert small.mean() < bound_small <= 1.0
    assert large.mean() < bound_large < bound_small
    assert bound_large < 0.13


def test_betting_upper_bound_is_the_whole_range_without_data():
    assert betting_upper_bound(np.array([]), alpha=0.05, upper=2.0) == 2.0


@pytest.mark.parametrize("p", [0.02, 0.1, 0.3])
def test_betting_upper_bound_covers_the_true_mean_in_simulation(p):
    rng = np.random.default_rng(int(p * 100))
    trials = 200
    misses = sum(
        betting_upper_bound((rng.uniform(size=150) < p).astype(float), alpha=0.1, upper=1.0) < p
        for _ in range(trials)
    )
    assert misses / trials <= 0.1 + 2 * math.sqrt(0.1 * 0.9 / trials)


def test_clt_upper_bound_matches_the_normal_formula():
    x = np.array([0.0, 1.0, 0.0, 1.0])
    expected = 0.5 + 1.6448536 * np.std(x, ddof=1) / 2
    assert clt_upper_bound(x, alpha=0.05) == pytest.approx(expected, rel=1e-6)
    assert clt_upper_bound(np.array([1.0]), alpha=0.05) == math.inf


def test_certify_keeps_the_confident_items_when_only_uncertain_ones_are_wrong():
    n = 1000
    u = np.linspace(0, 1, n)
    wrong = (u > 0.7).astype(float)
    sampling = calibration_probabilities(u, uniform_share=1.0)
    draws = draw_calibration(sampling, draws=600, rng=np.random.default_rng(0))
    result = certify_threshold(u, draws=draws, sampling=sampling, loss=wrong[draws], epsilon=0.05, alpha=0.05)
    # every item below 0.7 is right, so the search passes them all and stops a little above 0.7
    assert 0.7 < result.threshold < 0.8
    below = np.flatnonzero(u < 0.7)
    assert not result.human[below[~np.isin(below, draws)]].any()
    assert result.human[u >= result.threshold].all() and result.human[draws].all()
    assert result.lower_bound <= result.estimated_error <= result.upper_bound <= 0.05
    assert (wrong * ~result.human).mean() <= 0.05


def test_certify_routes_everything_when_the_llm_is_mostly_wrong():
    n = 500
    u = np.linspace(0, 1, n)
    wrong = np.ones(n)
    sampling = calibration_probabilities(u, uniform_share=1.0)
    draws = draw_calibration(sampling, draws=200, rng=np.random.default_rng(1))
    result = certify_threshold(u, draws=draws, sampling=sampling, loss=wrong[draws], epsilon=0.01, alpha=0.05)
    assert result.threshold == -math.inf and result.human.all() and result.human_share == 1.0


def test_certify_rejects_bad_arguments():
    u = np.arange(5.0)
    sampling = np.full(5, 0.2)
    with pytest.raises(ValueError):
        certify_threshold(
            u, draws=np.array([0]), sampling=sampling, loss=np.array([0.0]), epsilon=0, alpha=0.1
        )
    with pytest.raises(ValueError):
        certify_threshold(
            u, draws=np.array([0, 1]), sampling=sampling, loss=np.array([0.0]), epsilon=0.1, alpha=0.1
        )


@pytest.mark.parametrize("bound", ["betting", "clt"])
def test_certified_error_stays_below_epsilon_in_simulation(bound):
    """A known population with an informative but imperfect score: the realised error of the final labels
    exceeds ε in at most about α of the trials (plus Monte-Carlo slack), and humans label well under all."""
    rng = np.random.default_rng(5)
    n, trials, epsilon, alpha = 2000, 60, 0.05, 0.1
    u = rng.uniform(size=n)
    wrong = (rng.uniform(size=n) < 0.4 * u**2).astype(float)
    violations, shares = 0, []
    for _ in range(trials):
        sampling = calibration_probabilities(u, uniform_share=0.5)
        draws = draw_calibration(sampling, draws=400, rng=rng)
        result = certify_threshold(
            u, draws=draws, sampling=sampling, loss=wrong[draws], epsilon=epsilon, alpha=alpha, bound=bound
        )
        violations += (wrong * ~result.human).mean() > epsilon
        shares.append(result.human_share)
    assert violations / trials <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / trials)
    assert np.mean(shares) < 0.8


def test_learned_uncertainty_ranks_by_the_fitted_rows_only():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 2))
    wrong = x[:, 0] > 0.5
    fit_rows = np.arange(200)
    score = learned_uncertainty(x, fit_rows=fit_rows, llm_was_wrong=wrong[fit_rows])
    held_out = np.arange(200, 400)
    assert score[held_out][wrong[held_out]].mean() > score[held_out][~wrong[held_out]].mean() + 0.3
    constant = learned_uncertainty(x, fit_rows=fit_rows, llm_was_wrong=np.zeros(200, bool))
    assert (constant == 0.0).all()


def test_items_already_labelled_by_humans_are_never_drawn_nor_kept():
    n = 400
    u = np.linspace(0, 1, n)
    wrong = (u > 0.8).astype(float)
    already_human = np.zeros(n, dtype=bool)
    already_human[:50] = True
    sampling = calibration_probabilities(u, uniform_share=0.5, already_human=already_human)
    assert (sampling[:50] == 0).all() and sampling.sum() == pytest.approx(1.0)
    draws = draw_calibration(sampling, draws=300, rng=np.random.default_rng(4))
    assert not np.isin(draws, np.arange(50)).any()
    result = certify_threshold(
        u,
        draws=draws,
        sampling=sampling,
        loss=wrong[draws],
        epsilon=0.05,
        alpha=0.1,
        already_human=already_human,
    )
    assert result.human[:50].all() and result.threshold > 0.5
    with pytest.raises(ValueError):
        calibration_probabilities(u, uniform_share=0.5, already_human=np.ones(n, dtype=bool))


def test_keepable_items_are_the_lowest_predicted_errors_up_to_the_margin():
    p = np.array([0.01, 0.5, 0.02, 0.03, 0.9])
    # cumulative predicted error / N over the sorted items: 0.002, 0.006, 0.012, ...; margin·ε = 0.01
    assert keepable_items(p, epsilon=0.01, margin=1.0).tolist() == [True, False, True, False, False]
    assert keepable_items(p, epsilon=0.01, margin=2.0).tolist() == [True, False, True, True, False]
    # items a human labels anyway are skipped and never keepable
    already = np.array([True, False, False, False, False])
    assert keepable_items(p, epsilon=0.01, margin=1.0, already_human=already).tolist() == [
        False,
        False,
        True,
        True,
        False,
    ]


def test_fit_sample_is_distinct_and_lands_mostly_where_the_prior_says_wrong():
    prior = np.r_[np.zeros(800), np.ones(200)]
    sample = draw_fit_sample(prior, size=100, rng=np.random.default_rng(0), uniform_share=0.2)
    assert len(np.unique(sample)) == 100
    assert np.mean(sample >= 800) > 0.7  # 80 % of the mass is on the 200 "probably wrong" items
    assert np.mean(sample < 800) > 0.05  # the uniform part still reaches the confident ones
    assert len(draw_fit_sample(prior, size=5000, rng=np.random.default_rng(0))) == 1000


def test_two_stage_design_with_a_keepable_region_keeps_the_guarantee_in_simulation():
    """The learned-score design of bench_certify on a known population: a fit sample drawn mostly where a
    noisy prior says wrong, a score fitted on it only, draws ∝ √score inside the keepable region. The realised
    error exceeds ε in at most about α of the trials, and humans label well under all items."""
    rng = np.random.default_rng(11)
    n, trials, epsilon, alpha = 2000, 40, 0.05, 0.1
    x = rng.normal(size=(n, 2))
    truth = 1 / (1 + np.exp(-(2.2 * x[:, 0] - 2.0)))
    wrong = (rng.uniform(size=n) < truth).astype(float)
    prior = truth + rng.normal(scale=0.1, size=n)
    violations, shares = 0, []
    for _ in range(trials):
        first = draw_fit_sample(prior, size=200, rng=rng)
        already = np.zeros(n, dtype=bool)
        already[first] = True
        score = learned_uncertainty(x, fit_rows=first, llm_was_wrong=wrong[first].astype(bool))
        score = score + rng.uniform(0, 1e-9, n)
        already |= ~keepable_items(score, epsilon=epsilon, margin=3.0, already_human=already)
        sampling = calibration_probabilities(score, uniform_share=0.3, power=0.5, already_human=already)
        draws = draw_calibration(sampling, draws=300, rng=rng)
        result = certify_threshold(
            score,
            draws=draws,
            sampling=sampling,
            loss=wrong[draws],
            epsilon=epsilon,
            alpha=alpha,
            already_human=already,
        )
        violations += (wrong * ~result.human).mean() > epsilon
        shares.append(result.human_share)
    assert violations / trials <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / trials)
    assert np.mean(shares) < 0.85
