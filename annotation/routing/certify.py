"""Certified labels (PAC labelling; ALGORITHMS.md §8; Candès, Ilyas, Zrnic 2025, arXiv 2506.10908).
Plain numpy / scikit-learn, no Django.

Goal: final labels whose error rate is at most ε with probability ≥ 1 − α, with as few human labels as
possible. Items are ranked by an uncertainty score u; the policy "keep the LLM's label where u < λ, ask a human
elsewhere" has the error e(λ) = (1/N) Σ 1{u_i < λ} · loss_i, which grows with λ. A calibration sample of
`draws` items, drawn with replacement from known probabilities q_i (a mix of uniform and uncertainty-
proportional, so draws land where the LLM is likely wrong — those items are mostly human-labelled anyway),
is labelled by humans; its inverse-probability-weighted (IPW) terms

    Z_j(λ) = 1{u_{I_j} < λ} · loss_{I_j} / (N · q_{I_j})        (I_j the j-th draw)

are i.i.d. with mean exactly e(λ) and bounded by 1 / (N · min q). Each λ's null "e(λ) > ε" is tested with the
Waudby-Smith–Ramdas betting martingale (valid for any sample size; a CLT test is offered for large samples)
and the thresholds are tested in increasing order, stopping at the first that fails (fixed-sequence testing:
valid without a multiplicity correction because e(λ) is monotone). Humans then label every item with u ≥ λ.

Hand-written rather than a library because no maintained package implements PAC labelling; ppi_py has no
betting bound for IPW terms. The betting test follows Waudby-Smith & Ramdas (JRSS-B 2024), one-sided, with their
aGRAPA bets (approximately Kelly-optimal; tighter than Hoeffding and than their symmetric plug-in bets here).

    sampling = calibration_probabilities(u, uniform_share=0.3)
    draws = draw_calibration(sampling, draws=300, rng=np.random.default_rng(0))
    result = certify_threshold(u, draws=draws, sampling=sampling, loss=wrong[draws], epsilon=0.05, alpha=0.05)
    result.human          # bool per item: humans label it (u ≥ λ, or it was in the calibration sample)
    result.upper_bound    # the (1 − α) upper confidence bound on the error of the kept LLM labels

A learned score must not see the labels the bound uses: fit it on a first sample (e.g. the router's
`predict_error` on those answers, or `learned_uncertainty`), then pass those items as `already_human` to
`calibration_probabilities` and `certify_threshold`: they are never drawn for the bound and never kept (a human
labelled them), and the bound is still on the error over all items.

Spending the human labels well (what bench_certify measures): only calibration draws on items that end up
*kept* cost extra human labels, and only they inform the bound. So draw the fit sample where a label-free
prior says the LLM is probably wrong (`draw_fit_sample`: those items go to humans anyway), send items whose
predicted error rules out keeping them straight to humans (`keepable_items`, passed as `already_human`), and
draw the calibration sample among the rest with q ∝ √(predicted error) (power=0.5) mixed with uniform:

    first = draw_fit_sample(prior, size=400, rng=rng)                  # humans label these; fit p on them
    outside = ~keepable_items(p, epsilon=0.05, already_human=fitted)   # fitted: bool mask of `first`
    sampling = calibration_probabilities(p, uniform_share=0.3, power=0.5, already_human=fitted | outside)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Bets are capped at this share of the largest safe bet so the capital can never hit zero.
BET_CAP = 0.75
# bound="auto": the betting bound (valid for any n) below this many calibration draws, the CLT bound from it on
# (ALGORITHMS.md §8: "a CLT bound when n is large"). Measured with bench_certify on stance.csv at 400 draws:
# CLT violation 0.01 (0.02 with the confidence shuffled) over 100 trials at α = 0.05, and 1.39–1.42× the
# baseline's saved share, against 1.20–1.24× with betting, whose finite-sample slack keeps the realised error
# near ε/2.
CLT_MIN_DRAWS = 300


def calibration_probabilities(
    uncertainty: np.ndarray,
    *,
    uniform_share: float,
    power: float = 1.0,
    already_human: np.ndarray | None = None,
) -> np.ndarray:
    """Draw probabilities q (summing to 1): `uniform_share` spread evenly, the rest proportional to
    uncertainty**power (negative values clipped to 0). With uniform_share = 1 the sample is uniform. With u a
    probability of error, power 0.5 minimises the IPW variance of the error estimate (q ∝ √p). Items in
    `already_human` (bool per item: a human labels them anyway, e.g. the sample a learned score was fitted on)
    get q = 0."""
    if not 0 < uniform_share <= 1:
        raise ValueError("uniform_share must be in (0, 1]")
    u = np.clip(np.asarray(uncertainty, dtype=np.float64), 0.0, None) ** power
    if u.size == 0:
        raise ValueError("no items")
    open_items = np.ones(u.size, dtype=bool) if already_human is None else ~np.asarray(already_human, bool)
    if not open_items.any():
        raise ValueError("every item is already labelled by a human")
    u = np.where(open_items, u, 0.0)
    uniform = open_items / open_items.sum()
    total = u.sum()
    if total <= 0:
        return uniform
    return uniform_share * uniform + (1 - uniform_share) * u / total


def draw_fit_sample(
    prior: np.ndarray, *, size: int, rng: np.random.Generator, uniform_share: float = 0.2
) -> np.ndarray:
    """`size` distinct item indices for fitting a learned score, drawn without replacement with probabilities
    mixing uniform (`uniform_share`) and ∝ prior² — `prior` a label-free "probably wrong" score (e.g. the
    router's prior_error_score). Most of the sample then lands on items humans label anyway, so fitting costs
    few extra human labels; the uniform part keeps some confident items in it so the score still ranks those.
    The sample's labels must not be reused by the bound (pass it as `already_human`)."""
    sampling = calibration_probabilities(prior, uniform_share=uniform_share, power=2.0)
    size = min(int(size), int(np.count_nonzero(sampling)))
    return rng.choice(len(sampling), size=size, replace=False, p=sampling)


def keepable_items(
    predicted_error: np.ndarray,
    *,
    epsilon: float,
    margin: float = 3.0,
    already_human: np.ndarray | None = None,
) -> np.ndarray:
    """Bool per item: the items whose LLM label the threshold search may keep — those with the lowest
    predicted error whose summed predicted error stays ≤ margin · ε · N. The rest go to humans without
    calibration draws (pass ~keepable as `already_human`), so every draw lands where it informs the bound.

    Valid whatever the prediction's quality: the region depends on the score only (fixed before the draws),
    and items outside it are never kept. A too-small region only costs savings; `margin` (3 by default) leaves
    room for a prediction that underestimates the error threefold."""
    p = np.clip(np.asarray(predicted_error, dtype=np.float64), 0.0, 1.0)
    fixed = np.zeros(p.size, dtype=bool) if already_human is None else np.asarray(already_human, dtype=bool)
    order = np.argsort(p, kind="stable")
    order = order[~fixed[order]]
    cumulative = np.cumsum(p[order]) / max(p.size, 1)
    keepable = np.zeros(p.size, dtype=bool)
    keepable[order[: int(np.searchsorted(cumulative, margin * epsilon, side="right"))]] = True
    return keepable


def draw_calibration(sampling: np.ndarray, *, draws: int, rng: np.random.Generator) -> np.ndarray:
    """`draws` item indices drawn with replacement from the probabilities `sampling`, in draw order."""
    return rng.choice(len(sampling), size=draws, replace=True, p=sampling)


def ipw_terms(*, kept: np.ndarray, loss: np.ndarray, sampling: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Z_j = kept_{I_j} · loss_j / (N · q_{I_j}) per draw j: their mean is an unbiased estimate of
    (1/N) Σ kept_i · loss_i. `kept` is a bool per item, `loss` one value in [0, 1] per draw."""
    draws = np.asarray(draws, dtype=np.int64)
    n = len(sampling)
    return (
        np.asarray(kept, dtype=np.float64)[draws] * np.asarray(loss, dtype=np.float64) / (n * sampling[draws])
    )


def _kelly_bets(scaled: np.ndarray, mean: float) -> np.ndarray:
    """Predictable bets against "E[x] ≥ mean" (each uses only the terms before t): WSR's approximate
    growth-rate-adaptive bet (aGRAPA) (mean − μ̂)/(σ̂² + (μ̂ − mean)²), clipped at 0, with the regularised
    running mean and variance. Near the Kelly bet when the true mean is well below `mean`, so it wastes fewer
    draws than the symmetric plug-in bet when error rates are small."""
    steps = np.arange(1, len(scaled) + 1)
    running_mean = (0.5 * mean + np.cumsum(scaled)) / (steps + 0.5)
    running_var = (0.25 * mean + np.cumsum((scaled - running_mean) ** 2)) / (steps + 0.5)
    previous_mean = np.r_[mean, running_mean[:-1]]
    previous_var = np.r_[0.25 * mean, running_var[:-1]]
    return np.clip((mean - previous_mean) / (previous_var + (previous_mean - mean) ** 2), 0.0, None)


def betting_rejects_mean_above(terms: np.ndarray, *, mean: float, alpha: float, upper: float) -> bool:
    """True when the betting martingale for "E[term] ≥ mean" reaches 1/α: then E[term] < mean with
    confidence 1 − α. Terms in [0, upper]; valid for any number of terms (Ville's inequality)."""
    scaled = np.asarray(terms, dtype=np.float64) / upper
    m = mean / upper
    if m >= 1:
        return True
    return _log_capital_max(scaled, np.array([m]))[0] >= math.log(1 / alpha)


def _log_capital_max(scaled: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Per candidate mean, the running maximum of the log capital of the bet against "E[x] ≥ mean"."""
    if scaled.size == 0:
        return np.zeros(len(means))
    best = np.empty(len(means))
    for position, m in enumerate(means):
        bets = np.minimum(_kelly_bets(scaled, m), BET_CAP / (1 - m))
        best[position] = np.cumsum(np.log1p(-bets * (scaled - m))).max()
    return best


def betting_upper_bound(terms: np.ndarray, *, alpha: float, upper: float, grid: int = 400) -> float:
    """(1 − α) upper confidence bound on E[term] for i.i.d. terms in [0, upper]: the smallest grid mean the
    betting martingale rejects (the set of means it does not reject is an interval [0, bound))."""
    terms = np.asarray(terms, dtype=np.float64)
    if terms.size == 0:
        return upper
    scaled = terms / upper
    # a grid fine near zero, where error rates live; the non-rejected set is an interval [0, bound)
    candidates = np.unique(np.r_[np.geomspace(1e-4, 1.0, grid), np.linspace(0.0, 1.0, grid)[1:-1]])
    candidates = candidates[(candidates > scaled.mean()) & (candidates < 1)]
    rejected = _log_capital_max(scaled, candidates) >= math.log(1 / alpha)
    if not rejected.any():
        return upper
    return float(candidates[np.argmax(rejected)] * upper)


def clt_upper_bound(terms: np.ndarray, *, alpha: float) -> float:
    """Normal-approximation (1 − α) upper bound on the mean: mean + z_{1−α} · sd / √n (large samples only)."""
    from scipy.stats import norm

    terms = np.asarray(terms, dtype=np.float64)
    if terms.size < 2:
        return math.inf
    return float(terms.mean() + norm.ppf(1 - alpha) * terms.std(ddof=1) / math.sqrt(terms.size))


@dataclass(frozen=True)
class CertifiedThreshold:
    """Outcome of the threshold search. `threshold` λ: the LLM's label is kept where u < λ (−inf: humans
    label everything). `human`: bool per item, humans label it (u ≥ λ or calibrated)."""

    threshold: float
    human: np.ndarray
    estimated_error: float  # IPW estimate of the error of the kept LLM labels, before calibration fixes
    upper_bound: float  # (1 − α) upper bound of that error
    lower_bound: float  # (1 − α) lower bound, for the two-sided interval shown with the certificate
    draws: int
    bound: str

    @property
    def human_share(self) -> float:
        return float(self.human.mean()) if self.human.size else 0.0


def _passes(terms: np.ndarray, *, epsilon: float, alpha: float, upper: float, bound: str) -> bool:
    if bound == "betting":
        return betting_rejects_mean_above(terms, mean=epsilon, alpha=alpha, upper=upper)
    if bound == "clt":
        return clt_upper_bound(terms, alpha=alpha) <= epsilon
    raise ValueError(f"unknown bound {bound!r}: betting, clt or auto")


def certify_threshold(
    uncertainty: np.ndarray,
    *,
    draws: np.ndarray,
    sampling: np.ndarray,
    loss: np.ndarray,
    epsilon: float,
    alpha: float,
    bound: str = "betting",
    already_human: np.ndarray | None = None,
) -> CertifiedThreshold:
    """The largest λ whose error bound is ≤ ε, searched in increasing λ and stopped at the first failure.

    `draws`: calibration item indices (with replacement, from `sampling`); `loss`: per draw, 1 when the LLM's
    label was wrong (the human disagreed), 0 otherwise (fractions allowed). The IPW terms only change where λ
    passes the score of a drawn wrong item, so only those breakpoints are tested (between two breakpoints the
    test has the same outcome). `already_human`: items a human labels anyway (drawn with q = 0, see
    calibration_probabilities); they are never kept, and the bound is on the error over all items."""
    u = np.asarray(uncertainty, dtype=np.float64)
    draws = np.asarray(draws, dtype=np.int64)
    loss = np.asarray(loss, dtype=np.float64)
    if bound == "auto":
        bound = "clt" if len(draws) >= CLT_MIN_DRAWS else "betting"
    if not 0 < epsilon < 1 or not 0 < alpha < 1:
        raise ValueError("epsilon and alpha must be in (0, 1)")
    if len(draws) != len(loss) or len(sampling) != len(u):
        raise ValueError("draws and loss need one value per draw; sampling one per item")
    n = len(u)
    fixed = np.zeros(n, dtype=bool) if already_human is None else np.asarray(already_human, dtype=bool)
    sampling = np.asarray(sampling, dtype=np.float64)
    if np.any(sampling[draws] <= 0):
        raise ValueError("a draw has probability 0")
    upper = 1.0 / (n * float(np.min(sampling[sampling > 0])))
    wrong_scores = np.unique(u[draws[loss > 0]])
    breakpoints = np.r_[wrong_scores, math.inf]
    threshold = -math.inf
    for candidate in breakpoints:
        terms = ipw_terms(kept=(u < candidate) & ~fixed, loss=loss, sampling=sampling, draws=draws)
        if not _passes(terms, epsilon=epsilon, alpha=alpha, upper=upper, bound=bound):
            break
        threshold = float(candidate)
    kept = (u < threshold) & ~fixed
    human = ~kept
    human[draws] = True
    terms = ipw_terms(kept=kept, loss=loss, sampling=sampling, draws=draws)
    if bound == "betting":
        high = betting_upper_bound(terms, alpha=alpha, upper=upper)
        low = upper - betting_upper_bound(upper - terms, alpha=alpha, upper=upper)
    else:
        high = clt_upper_bound(terms, alpha=alpha)
        low = 2 * float(terms.mean()) - high
    if threshold > -math.inf:  # the test rejected "error > ε" at this λ; the grid bound may read a hair above
        high = min(high, epsilon)
    return CertifiedThreshold(
        threshold=threshold,
        human=human,
        estimated_error=float(terms.mean()) if terms.size else 0.0,
        upper_bound=min(1.0, high),
        lower_bound=max(0.0, low),
        draws=len(draws),
        bound=bound,
    )


def learned_uncertainty(
    features: np.ndarray, *, fit_rows: np.ndarray, llm_was_wrong: np.ndarray, seed: int = 0
) -> np.ndarray:
    """P(LLM wrong) per item from a logistic regression fitted on `fit_rows` only (their human answers say
    whether the LLM was wrong). Sample splitting: use it to rank the *other* items, and bound with labels
    from a later sample — the score never sees the labels the bound uses. With answers of only one kind
    the score is the constant share of wrong answers (uninformative, still valid)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(llm_was_wrong, dtype=bool)
    fit_rows = np.asarray(fit_rows, dtype=np.int64)
    if y.size != fit_rows.size:
        raise ValueError("llm_was_wrong needs one value per fitted row")
    if y.all() or not y.any():
        return np.full(len(features), float(y.mean()) if y.size else 0.5)
    model = make_pipeline(StandardScaler(with_mean=False), LogisticRegression(C=0.1, max_iter=2000))
    model.fit(features[fit_rows], y)
    return model.predict_proba(features)[:, 1]
