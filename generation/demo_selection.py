"""Choosing in-context demos (no Django): random, most similar (kNN by cosine), most diverse (k-means
medoids) and representative and diverse (vote-k, Su et al. 2023, from synthstudio.votek), with human-verified
items preferred over seeds (survey §3.1.1, Long et al. 2024).

The pool is ordered: the first `verified_count` items are human-verified, the rest are seeds. A picker
fills the demos from the verified part first and tops up from the seeds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from synthstudio.vectors import normalise_rows
from synthstudio.votek import VOTEK_K, votek_select

STRATEGIES = ("none", "random", "similar", "kmeans", "votek")


def pick_random(candidates: Sequence[int], k: int, rng: random.Random) -> list[int]:
    return rng.sample(list(candidates), min(k, len(candidates)))


def pick_most_similar(
    vectors: np.ndarray, candidates: Sequence[int], target: np.ndarray, k: int
) -> list[int]:
    """The k candidates with the highest cosine similarity to target (ties toward the lower index)."""
    if not len(candidates) or k <= 0:
        return []
    chosen = np.asarray(candidates)
    pool = vectors[chosen]
    pool = normalise_rows(pool, dtype=np.float64)
    direction = target / max(float(np.linalg.norm(target)), 1e-12)
    sims = pool @ direction
    order = np.lexsort((chosen, -sims))
    return [int(chosen[i]) for i in order[:k]]


def pick_kmeans_medoids(vectors: np.ndarray, candidates: Sequence[int], k: int, seed: int = 0) -> list[int]:
    """k-means with k clusters over the candidates; from each cluster the item nearest its centroid."""
    from sklearn.cluster import KMeans

    chosen = np.asarray(candidates)
    if k <= 0 or not len(chosen):
        return []
    if len(chosen) <= k:
        return [int(i) for i in chosen]
    pool = vectors[chosen]
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(pool)
    picks: list[int] = []
    for cluster, centre in enumerate(model.cluster_centers_):
        members = np.flatnonzero(model.labels_ == cluster)
        if not len(members):
            continue
        distances = np.linalg.norm(pool[members] - centre, axis=1)
        picks.append(int(chosen[members[int(np.argmin(distances))]]))
    return picks


def pick_votek(vectors: np.ndarray, candidates: Sequence[int], k: int) -> list[int]:
    """Vote-k over the candidates. Each candidate votes for its len/(2k) nearest others (1 to VOTEK_K): a
    neighbourhood well inside a region the size of one demo's share, so a pick covers its own region and the
    next comes from one not yet covered (with len/k, votes leaked across regions and two demos could share
    one). Vote-k stops when no unpicked candidate has a voter left; the rest is then filled in pool order.
    """
    chosen = np.asarray(candidates)
    if k <= 0 or not len(chosen):
        return []
    if len(chosen) <= k:
        return [int(i) for i in chosen]
    neighbours = min(VOTEK_K, max(1, len(chosen) // (2 * k)))
    order = [int(i) for i in votek_select(vectors[chosen], k, k=neighbours)]
    picked = set(order)
    order += [i for i in range(len(chosen)) if i not in picked][: k - len(order)]
    return [int(chosen[i]) for i in order]


def pick_demos(
    strategy: str,
    k: int,
    *,
    pool_size: int,
    verified_count: int,
    vectors: np.ndarray | None = None,
    target: np.ndarray | None = None,
    rng: random.Random | None = None,
    seed: int = 0,
) -> list[int]:
    """Indices into the pool: verified items first, then seeds, by the strategy."""
    if strategy == "none" or k <= 0 or pool_size == 0:
        return []
    rng = rng or random.Random(seed)
    verified = list(range(min(verified_count, pool_size)))
    seeds = list(range(len(verified), pool_size))
    picks: list[int] = []
    for part in (verified, seeds):
        want = k - len(picks)
        if want <= 0 or not part:
            continue
        if strategy == "random":
            picks += pick_random(part, want, rng)
        elif strategy == "similar":
            if vectors is None or target is None:
                raise ValueError("'similar' needs vectors and a target")
            picks += pick_most_similar(vectors, part, target, want)
        elif strategy == "kmeans":
            if vectors is None:
                raise ValueError("'kmeans' needs vectors")
            picks += pick_kmeans_medoids(vectors, part, want, seed)
        elif strategy == "votek":
            if vectors is None:
                raise ValueError("'votek' needs vectors")
            picks += pick_votek(vectors, part, want)
        else:
            raise ValueError(f"Unknown demo strategy {strategy!r}")
    return picks
