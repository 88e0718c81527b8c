"""Unbiased estimates of corpus statistics from LLM labels plus a few human labels (ALGORITHMS.md §8).
Plain numpy / scipy / ppi_py, no Django.

A statistic θ = (1/N) Σ y_i of the corpus (a label's prevalence: y = 1{label = k}; the LLM's accuracy:
y = 1{LLM right}) is estimated from the LLM's prediction f_i of y_i on every item and human answers y_i on a
sample. Three estimators, all returning an `Estimate` (point, interval, how many human labels):

- `human_only_estimate`: the classical interval from the human labels of a uniform sample (the reference).
- `ppi_estimate`: PPI++ with power tuning on a uniform sample (Angelopoulos, Duchi, Zrnic 2023), computed
  by `ppi_py.ppi_mean_ci` / `ppi_mean_pointestimate`.
- `cdi_estimate`: confidence-driven inference (Gligorić, Zrnic, Lee, Candès, Jurafsky, NAACL 2025) for a
  Poisson sample with known, unequal inclusion probabilities π_i:
      θ̂ = (1/N) Σ [g_i + (y_i − g_i) ξ_i / π_i],   g_i = a + λ f_i,
  whose Horvitz–Thompson variance (1/N²) Σ (y_i − g_i)² (1 − π_i)/π_i is estimated from the sample by
  (1/N²) Σ ξ_i (y_i − g_i)² (1 − π_i)/π_i²; (a, λ) minimise that estimate (power tuning by weighted least
  squares). The intercept matters with Poisson sampling: the random sample size adds the squared mean of the
  residual to the variance, so the residual must be centred, not only correlated with f.
  Hand-written because ppi_py has no estimator for Poisson samples with unequal π.

`cdi_inclusion_probabilities` turns an uncertainty per item into π with an expected sample size of `budget`:
a mix of uniform (floor) and ∝ uncertainty, capped at 1. For Bernoulli y with prediction f, the variance-
minimising choice is π ∝ √E[(y − f)²], so pass that (or an estimate of it) as the uncertainty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    point: float
    low: float
    high: float
    human_labels: int
    method: str  # "human_only" | "ppi++" | "cdi" | "routed_only"

    @property
    def width(self) -> float:
        return self.high - self.low


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def human_only_estimate(y: np.ndarray, *, alpha: float) -> Estimate:
    """Mean of the human labels of a uniform sample with its normal (CLT) interval."""
    from ppi_py import classical_mean_ci

    y = np.asarray(y, dtype=np.float64)
    if y.size < 2:
        raise ValueError("at least two human labels are needed")
    low, high = classical_mean_ci(y, alpha=alpha)
    return Estimate(float(y.mean()), float(low), float(high), int(y.size), "human_only")


def ppi_estimate(
    y: np.ndarray, f_labelled: np.ndarray, f_unlabelled: np.ndarray, *, alpha: float
) -> Estimate:
    """PPI++ (power-tuned) on a uniform sample: human labels `y` and the predictions on the same items,
    predictions on the other items. Never wider than human-only asymptotically (λ = 0 recovers it)."""
    from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

    y = np.asarray(y, dtype=np.float64)
    f_labelled = np.asarray(f_labelled, dtype=np.float64)
    f_unlabelled = np.asarray(f_unlabelled, dtype=np.float64)
    if y.size < 2 or y.size != f_labelled.size:
        raise ValueError("at least two human labels, each with its prediction, are needed")
    point = ppi_mean_pointestimate(y, f_labelled, f_unlabelled)
    low, high = ppi_mean_ci(y, f_labelled, f_unlabelled, alpha=alpha)
    return Estimate(
        float(np.ravel(point)[0]), float(np.ravel(low)[0]), float(np.ravel(high)[0]), y.size, "ppi++"
    )


def cdi_inclusion_probabilities(
    uncertainty: np.ndarray, *, budget: float, uniform_share: float
) -> np.ndarray:
    """π per item with Σ π = budget: `uniform_share` of the budget spread evenly, the rest ∝ uncertainty, and
    any π above 1 capped with its excess spread over the others (so the expected sample size stays `budget`)."""
    u = np.clip(np.asarray(uncertainty, dtype=np.float64), 0.0, None)
    n = u.size
    if not 0 < budget <= n:
        raise ValueError("budget must be in (0, number of items]")
    if not 0 < uniform_share <= 1:
        raise ValueError("uniform_share must be in (0, 1]")
    proportional = u / u.sum() if u.sum() > 0 else np.full(n, 1.0 / n)
    weights = uniform_share / n + (1 - uniform_share) * proportional
    pi = np.zeros(n)
    capped = np.zeros(n, dtype=bool)
    for _ in range(n):
        remaining = budget - capped.sum()
        free = ~capped
        pi[free] = remaining * weights[free] / weights[free].sum()
        pi[capped] = 1.0
        over = free & (pi > 1)
        if not over.any():
            break
        capped |= over
    return pi


def poisson_sample(pi: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Indices of a Poisson sample: item i in independently with probability π_i."""
    return np.flatnonzero(rng.uniform(size=len(pi)) < pi)


def cdi_estimate(
    f: np.ndarray,
    *,
    sampled: np.ndarray,
    y_sampled: np.ndarray,
    pi: np.ndarray,
    alpha: float,
    covariates: np.ndarray | None = None,
) -> Estimate:
    """CDI point estimate and normal interval for a Poisson sample (`sampled` indices with human answers
    `y_sampled`, inclusion probabilities `pi` for every item, predictions `f` for every item).

    `covariates` (n, k), optional: further per-item predictions of y known for every item (e.g. a learned
    P(LLM wrong) fitted on an earlier batch, never on this sample's labels); the guess becomes
    g = a + λ f + Σ β_j c_j, all coefficients power-tuned by the same weighted least squares. A useless
    covariate costs one degree of freedom, nothing more."""
    f = np.asarray(f, dtype=np.float64)
    pi = np.asarray(pi, dtype=np.float64)
    sampled = np.asarray(sampled, dtype=np.int64)
    y_sampled = np.asarray(y_sampled, dtype=np.float64)
    if sampled.size != y_sampled.size:
        raise ValueError("one human answer per sampled item")
    if sampled.size < 2:
        raise ValueError("at least two human labels are needed")
    if np.any(pi[sampled] <= 0):
        raise ValueError("a sampled item has inclusion probability 0")
    n = f.size
    columns = [np.ones(n), f]
    if covariates is not None:
        extra = np.asarray(covariates, dtype=np.float64).reshape(n, -1)
        columns += list(extra.T)
    full_design = np.column_stack(columns)
    pi_s = pi[sampled]
    weight = (1 - pi_s) / pi_s**2
    design = full_design[sampled]
    gram = design.T @ (weight[:, None] * design)
    if np.all(weight <= 0) or np.linalg.matrix_rank(gram) < 2:
        coefficients = np.zeros(full_design.shape[1])
        coefficients[1] = 1.0
    else:
        coefficients = np.linalg.lstsq(gram, design.T @ (weight * y_sampled), rcond=None)[0]
    guess = full_design @ coefficients
    residual = y_sampled - guess[sampled]
    point = (float(guess.sum()) + float(np.sum(residual / pi_s))) / n
    variance = float(np.sum(residual**2 * (1 - pi_s) / pi_s**2)) / n**2
    half = _z(alpha) * math.sqrt(variance)
    return Estimate(point, point - half, point + half, int(sampled.size), "cdi")


def routed_only_estimate(y_routed: np.ndarray) -> Estimate:
    """The figure dashboards show today: the plain mean over routed items — biased, no valid interval."""
    y_routed = np.asarray(y_routed, dtype=np.float64)
    value = float(y_routed.mean()) if y_routed.size else math.nan
    return Estimate(value, math.nan, math.nan, int(y_routed.size), "routed_only")
