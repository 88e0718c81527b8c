"""Selection strategies: which items humans should see (survey Appendix A; ALGORITHMS.md §3–4).

Plain numpy / scikit-learn, no Django. Every function takes arrays and returns an int64 array of selected row
indices, in selection order (first = most wanted), deterministic for a given seed.

Two jobs:
- cold start / demo selection (pick a small diverse, representative set): `random_select`, `kmeans_select`,
  `votek_select`, `votek_two_stage_select` (vote-k's greedy is synthstudio.votek's, shared with generation);
  each takes `already_selected`, the rows earlier batches picked, and continues from them instead of
  restarting from scratch;
- error routing (pick which LLM labels to check): `least_confidence_select`, `margin_select`,
  `entropy_select` (all via `rank_by_uncertainty`), `coannotating_allocate`; the learned router lives in
  `annotation.routing.router`.

Probability matrices are (n, L): row i is the LLM's distribution over the codebook's L labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# vote-k lives in synthstudio.votek (generation picks demos with it too); re-exported here for annotation
from synthstudio.votek import (  # noqa: F401
    TIE_TOLERANCE,
    VOTEK_K,
    VOTEK_RHO,
    VoteGraph,
    VoteKGreedy,
    earlier_rows,
    votek_select,
    votek_two_stage_select,
)

UNCERTAINTY_METHODS = ("least_confidence", "margin", "entropy")


# ---------------------------------------------------------------- uncertainty from label distributions


def as_probability_matrix(probs: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """(n, L) float64 rows clipped at 0 and renormalised to sum to 1 (an all-zero row becomes uniform)."""
    matrix = np.asarray(probs, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"expected an (n, L) probability matrix, got shape {matrix.shape}")
    matrix = np.clip(matrix, 0.0, None)
    totals = matrix.sum(axis=1, keepdims=True)
    empty = totals[:, 0] == 0
    if empty.any():
        matrix[empty] = 1.0
        totals[empty] = matrix.shape[1]
    return matrix / totals


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """u = 1 − max p. 0 for a one-hot row, 1 − 1/L for a uniform row."""
    matrix = as_probability_matrix(probs)
    return 1.0 - matrix.max(axis=1)


def margin_uncertainty(probs: np.ndarray) -> np.ndarray:
    """u = −(p(1) − p(2)), p(1) ≥ p(2) the two largest; a single-label codebook has p(2) = 0."""
    matrix = as_probability_matrix(probs)
    if matrix.shape[1] == 1:
        return -matrix[:, 0]
    top_two = -np.partition(-matrix, 1, axis=1)[:, :2]
    return -(top_two[:, 0] - top_two[:, 1])


def entropy(probs: np.ndarray) -> np.ndarray:
    """u = −Σ p log p in nats, with 0 log 0 = 0. log L for a uniform row."""
    matrix = as_probability_matrix(probs)
    logs = np.log(np.where(matrix > 0, matrix, 1.0))
    return -(matrix * logs).sum(axis=1) + 0.0  # + 0.0 turns -0.0 into 0.0


def uncertainty_scores(probs: np.ndarray, method: str) -> np.ndarray:
    """Uncertainty per row by `method` (one of UNCERTAINTY_METHODS); higher = less certain."""
    if method == "least_confidence":
        return least_confidence(probs)
    if method == "margin":
        return margin_uncertainty(probs)
    if method == "entropy":
        return entropy(probs)
    raise ValueError(f"unknown uncertainty method {method!r}; use one of {', '.join(UNCERTAINTY_METHODS)}")


def rank_by_uncertainty(probs: np.ndarray, method: str) -> np.ndarray:
    """All row indices, most uncertain first; equal uncertainty keeps the lower index first."""
    scores = uncertainty_scores(probs, method)
    return np.argsort(-scores, kind="stable").astype(np.int64)


def least_confidence_select(probs: np.ndarray, budget: int) -> np.ndarray:
    return rank_by_uncertainty(probs, "least_confidence")[: max(0, budget)]


def margin_select(probs: np.ndarray, budget: int) -> np.ndarray:
    return rank_by_uncertainty(probs, "margin")[: max(0, budget)]


def entropy_select(probs: np.ndarray, budget: int) -> np.ndarray:
    return rank_by_uncertainty(probs, "entropy")[: max(0, budget)]


def coannotating_allocate(probs: np.ndarray, llm_share: float) -> tuple[np.ndarray, np.ndarray]:
    """CoAnnotating (Li et al., EMNLP 2023): keep the most certain `llm_share` of items (lowest entropy of the
    label distribution, e.g. over prompt variants) as LLM labels; the rest go to humans.

    Returns (llm_indices, human_indices): llm_indices most certain first, human_indices most uncertain first
    (the order a queue should serve them). round(llm_share · n) items stay with the LLM.
    """
    if not 0.0 <= llm_share <= 1.0:
        raise ValueError(f"llm_share must be between 0 and 1, got {llm_share}")
    scores = entropy(probs)
    most_certain_first = np.argsort(scores, kind="stable").astype(np.int64)
    keep = int(round(llm_share * len(scores)))
    llm_indices = most_certain_first[:keep]
    to_humans = most_certain_first[keep:]
    human_indices = to_humans[np.argsort(-scores[to_humans], kind="stable")]
    return llm_indices, human_indices


# ---------------------------------------------------------------- cold start: random and k-means


def random_select(n: int, budget: int, *, seed: int = 0) -> np.ndarray:
    """`budget` distinct indices from range(n), uniformly at random, reproducible with `seed`."""
    size = max(0, min(budget, n))
    return np.random.default_rng(seed).choice(n, size=size, replace=False).astype(np.int64)


# Above this many rows k-means uses MiniBatchKMeans: full Lloyd iterations over 100k × 384 with 1,000
# centroids take minutes on two cores; mini-batches take seconds and pick equally representative items.
MINIBATCH_KMEANS_ABOVE = 10_000


def kmeans_fit(x: np.ndarray, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(assignment per row, centroids) of k-means with `clusters` clusters (mini-batches on large inputs)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if x.shape[0] > MINIBATCH_KMEANS_ABOVE:
        batch_size = 4096
        model = MiniBatchKMeans(
            n_clusters=clusters,
            random_state=seed,
            batch_size=batch_size,
            init_size=max(3 * batch_size, 3 * clusters),
            n_init=1,
            max_no_improvement=10,
        )
    else:
        model = KMeans(n_clusters=clusters, random_state=seed, n_init=1)
    assignment = model.fit_predict(x)
    return assignment, model.cluster_centers_.astype(np.float32)


def kmeans_select(
    embeddings: np.ndarray,
    budget: int,
    *,
    seed: int = 0,
    already_selected: np.ndarray | Sequence[int] | None = None,
) -> np.ndarray:
    """k-means with `budget` clusters, then for each cluster the member nearest its centroid.

    Members only, so picks are distinct; clusters are visited largest first (ties: lower cluster id). An empty
    cluster (possible with mini-batches) is replaced by the item nearest its centroid not yet picked.

    `already_selected`: rows picked in earlier batches (humans have them already). Then k-means runs with
    budget + len(already_selected) clusters, the clusters holding an earlier pick are skipped, and the new picks
    are the medoids of the clusters not yet hit: a batch covers regions earlier batches left out instead of
    restarting from scratch (a fresh k-means would put centres on the same dense regions again). Earlier picks
    are never returned; the result holds at most `budget` new rows.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    n = x.shape[0]
    earlier = earlier_rows(already_selected, n)
    eligible = np.ones(n, dtype=bool)
    eligible[earlier] = False
    want = max(0, min(budget, int(eligible.sum())))
    if want == 0:
        return np.zeros(0, dtype=np.int64)
    if want == int(eligible.sum()):
        return np.flatnonzero(eligible).astype(np.int64)
    clusters = min(n, want + earlier.size)
    assignment, centroids = kmeans_fit(x, clusters, seed)
    # squared distance of every item to its own centroid, O(n·d); earlier picks can never be a new medoid
    own_distance = ((x - centroids[assignment]) ** 2).sum(axis=1)
    own_distance[~eligible] = np.inf
    # nearest member per cluster: sort by (cluster, distance, index) and take each cluster's first row
    order = np.lexsort((np.arange(n), own_distance, assignment))
    first_of_cluster = np.ones(n, dtype=bool)
    first_of_cluster[1:] = assignment[order][1:] != assignment[order][:-1]
    medoid_of = np.full(clusters, -1, dtype=np.int64)
    medoid_of[assignment[order][first_of_cluster]] = order[first_of_cluster]
    sizes = np.bincount(assignment, minlength=clusters)
    hit = np.zeros(clusters, dtype=bool)
    hit[assignment[earlier]] = True
    picked: list[int] = []
    taken = ~eligible
    # at most len(earlier) clusters are hit, so the clusters not hit are at least `want`
    for cluster in np.argsort(-sizes, kind="stable"):
        if len(picked) == want:
            break
        if hit[cluster]:
            continue
        item = int(medoid_of[cluster])
        if item < 0 or taken[item]:
            distances = ((x - centroids[cluster]) ** 2).sum(axis=1)
            distances[taken] = np.inf
            item = int(np.argmin(distances))
        picked.append(item)
        taken[item] = True
    return np.asarray(picked, dtype=np.int64)


# ---------------------------------------------------------------- cold start: vote-k, carrying earlier picks
