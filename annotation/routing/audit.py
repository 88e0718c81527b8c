"""Poisson draws with recorded inclusion probabilities: the audit slice of every routing batch and the "sample for
estimation" strategy (ALGORITHMS.md §8). Plain numpy, no Django.

Routing's strategies pick the items most likely to be wrong, so the human answers on them say nothing unbiased
about the rest. A Poisson draw does: every candidate i is taken independently with a known probability π_i > 0,
and the Horvitz–Thompson mean (1/N) Σ y_i ξ_i / π_i (ξ_i = 1 if drawn) is an unbiased estimate of the mean of y
over all N candidates, whatever y is. `inclusion_probabilities` sets π_i: a share spread evenly (so every π_i has
a floor) and the rest proportional to an uncertainty, scaled to an expected sample size and capped at 1 (what a
cap removes is spread over the others, so the expected size stays as asked). Confidence-driven inference
(Gligorić et al., NAACL 2025) samples this way to narrow its intervals where the LLM is unsure.

A routing batch must never go beyond the human budget, and a Poisson draw's size is random. `poisson_draw` keeps
at most `room` items: when more are drawn it keeps a uniformly random `room` of them. That changes every item's
probability of ending up routed to

    π'_i = π_i · E[min(1, room / (1 + S_{−i}))],   S_{−i} the number drawn among the other items,

which is computed exactly (up to a negligible truncated tail) from the Poisson-binomial distribution of the draw
count, and π' is what the caller must record, whether or not this particular draw was cut: the recorded π is a
property of the design, not of the outcome. When the room cannot be exceeded in practice (room above the count's
mean + 12 standard deviations + 20) π' = π and nothing is computed.

Hand-written rather than taken from evaluation.estimation (which has the same π formula for the estimates page)
because annotation must not import evaluation, and because neither it nor a sampling library (e.g. R's
`sampling`; Python has no maintained equivalent) records the probabilities of a Poisson sample cut to a maximum
size.

    pi = inclusion_probabilities(np.sqrt(1 - confidence), expected=5.0, uniform_share=0.5)
    draw = poisson_draw(pi, room=40, rng=np.random.default_rng(0))
    draw.indices, draw.probabilities      # what was drawn; π' of each drawn item (record these)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The count of a Poisson draw stays below mean + TAIL_SDS·sd + TAIL_SLACK except with a probability far below
# float precision (Bernstein's inequality), so the distribution is computed up to there and the rest ignored.
TAIL_SDS = 12.0
TAIL_SLACK = 20


@dataclass(frozen=True)
class PoissonDraw:
    indices: np.ndarray  # int64, ascending: the items kept
    probabilities: np.ndarray  # float64 per kept item: its recorded inclusion probability π'
    drawn: int  # how many the Poisson draw took before any cut to the room


def inclusion_probabilities(uncertainty: np.ndarray, *, expected: float, uniform_share: float) -> np.ndarray:
    """π per item with Σ π = `expected` (at most the number of items): `uniform_share` of it spread evenly, the
    rest ∝ uncertainty (negative values count as 0; all zero → uniform), any π above 1 capped at 1 and its
    excess spread over the others in proportion. Every π ≥ uniform_share · expected / n > 0 when expected > 0."""
    u = np.clip(np.asarray(uncertainty, dtype=np.float64), 0.0, None)
    n = u.size
    if not 0 < uniform_share <= 1:
        raise ValueError("uniform_share must be in (0, 1]")
    if expected < 0:
        raise ValueError("expected must be ≥ 0")
    if n == 0 or expected == 0:
        return np.zeros(n)
    expected = min(float(expected), float(n))
    proportional = u / u.sum() if u.sum() > 0 else np.full(n, 1.0 / n)
    weights = uniform_share / n + (1 - uniform_share) * proportional
    pi = np.zeros(n)
    capped = np.zeros(n, dtype=bool)
    while True:  # at most n rounds: each adds at least one item to `capped`
        free = ~capped
        pi[capped] = 1.0
        pi[free] = (expected - capped.sum()) * weights[free] / weights[free].sum()
        over = free & (pi > 1.0)
        if not over.any():
            return np.clip(pi, 0.0, 1.0)
        capped |= over


def count_distribution(pi: np.ndarray, *, upto: int) -> np.ndarray:
    """P(S = k) for k = 0..upto, S = Σ Bernoulli(π_i) (the Poisson-binomial law); mass above `upto` is dropped
    (the caller picks `upto` beyond any real tail). The product of the items' generating polynomials
    (1 − π_i + π_i z) is formed pairwise with FFT convolutions, so 100,000 items take milliseconds, not the
    seconds of the item-by-item recursion."""
    p = np.asarray(pi, dtype=np.float64)
    p = p[p > 0]
    polys = np.stack([1.0 - p, p], axis=1) if p.size else np.ones((1, 1))
    while polys.shape[0] > 1:
        if polys.shape[0] % 2:
            polys = np.vstack([polys, np.eye(1, polys.shape[1])])
        length = polys.shape[1]
        size = 1 << (2 * length - 2).bit_length()  # ≥ 2·length − 1: no wrap-around
        product = np.fft.irfft(
            np.fft.rfft(polys[0::2], n=size, axis=1) * np.fft.rfft(polys[1::2], n=size, axis=1),
            n=size,
            axis=1,
        )
        polys = np.clip(product[:, : min(2 * length - 1, upto + 1)], 0.0, None)
    dist = np.zeros(upto + 1)
    dist[: min(upto + 1, polys.shape[1])] = polys[0, : upto + 1]
    return dist / dist.sum()


def kept_share(pi: np.ndarray, *, room: int) -> np.ndarray:
    """E[min(1, room / (1 + S_{−i}))] per item: the chance that item i, once drawn, survives the cut of a draw to
    `room` items (a uniformly random `room` of the drawn are kept). 1 everywhere when the cut cannot happen.

    S_{−i}'s law comes from the whole count's law P by removing item i's Bernoulli factor:
    P(k) = (1 − π_i) Q(k) + π_i Q(k − 1), solved forwards when π_i < ½ and backwards from the truncated top
    otherwise (each direction divides by the larger factor, so errors shrink instead of growing)."""
    pi = np.asarray(pi, dtype=np.float64)
    if room < 0:
        raise ValueError("room must be ≥ 0")
    mean = float(pi.sum())
    sd = math.sqrt(float((pi * (1 - pi)).sum()))
    upto = min(pi.size, int(math.ceil(mean + TAIL_SDS * sd)) + TAIL_SLACK)
    if room >= upto:
        return np.ones(pi.size)
    dist = count_distribution(pi, upto=upto + 1)
    keep = np.minimum(1.0, room / (1.0 + np.arange(upto + 1)))  # given k others drawn
    share = np.ones(pi.size)
    low = pi < 0.5
    if low.any():
        p = pi[low]
        q, kept, mass = np.zeros(p.size), np.zeros(p.size), np.zeros(p.size)
        for k in range(upto + 1):
            q = np.clip((dist[k] - p * q) / (1.0 - p), 0.0, None)
            kept += q * keep[k]
            mass += q
        share[low] = kept / np.maximum(mass, 1e-300)
    high = ~low
    if high.any():
        p = pi[high]
        q, kept, mass = np.zeros(p.size), np.zeros(p.size), np.zeros(p.size)  # Q(upto + 1) ≈ 0: past the tail
        for k in range(upto + 1, 0, -1):
            q = np.clip((dist[k] - (1.0 - p) * q) / p, 0.0, None)
            kept += q * keep[k - 1]
            mass += q
        share[high] = kept / np.maximum(mass, 1e-300)
    return share


def poisson_draw(pi: np.ndarray, *, room: int, rng: np.random.Generator) -> PoissonDraw:
    """Take each item independently with probability π_i, keep at most `room` of those drawn (a uniformly random
    subset when more were drawn), and return the kept items with their recorded π' = π · kept_share (see the
    module docstring)."""
    pi = np.asarray(pi, dtype=np.float64)
    if np.any((pi < 0) | (pi > 1)):
        raise ValueError("inclusion probabilities must be in [0, 1]")
    room = max(0, int(room))
    drawn = np.flatnonzero(rng.uniform(size=pi.size) < pi)
    kept = drawn
    if drawn.size > room:
        kept = np.sort(rng.choice(drawn, size=room, replace=False))
    recorded = pi[kept] * kept_share(pi, room=room)[kept] if kept.size else np.zeros(0)
    return PoissonDraw(kept.astype(np.int64), recorded, int(drawn.size))
