"""Selection strategies: which items humans should see (survey Appendix A; ALGORITHMS.md §3–4).

Plain numpy / scikit-learn, no Django. Every function takes arrays and returns an int64 array of selected row
indices, in selection order (first = most wanted), deterministic for a given seed.

Two jobs:
- cold start / demo selection (pick a small diverse, representative set): `random_select`, `kmeans_select`,
  `votek_select`, `votek_two_stage_select`;
- error routing (pick which LLM labels to check): `least_confidence_select`, `margin_select`,
  `entropy_select` (all via `rank_by_uncertainty`), `coannotating_allocate`; the learned router lives in
  `annotation.router`.

Probability matrices are (n, L): row i is the LLM's distribution over the codebook's L labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthstudio.vectors import cosine_knn

UNCERTAINTY_METHODS = ("least_confidence", "margin", "entropy")
VOTEK_K = 150
VOTEK_RHO = 10.0
# Scores within this relative distance of the best count as ties (broken toward the lower index), so float
# rounding in the incremental updates cannot change the order against an exact computation.
TIE_TOLERANCE = 1e-9


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


def kmeans_select(embeddings: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
    """k-means with `budget` clusters, then for each cluster the member nearest its centroid.

    Members only, so picks are distinct; clusters are visited largest first (ties: lower cluster id). An empty
    cluster (possible with mini-batches) is replaced by the item nearest its centroid not yet picked.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = np.asarray(embeddings, dtype=np.float32)
    n = x.shape[0]
    clusters = max(0, min(budget, n))
    if clusters == 0:
        return np.zeros(0, dtype=np.int64)
    if clusters == n:
        return np.arange(n, dtype=np.int64)
    if n > MINIBATCH_KMEANS_ABOVE:
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
    centroids = model.cluster_centers_.astype(np.float32)
    # squared distance of every item to its own centroid, O(n·d)
    own_distance = ((x - centroids[assignment]) ** 2).sum(axis=1)
    # nearest member per cluster: sort by (cluster, distance, index) and take each cluster's first row
    order = np.lexsort((np.arange(n), own_distance, assignment))
    first_of_cluster = np.ones(n, dtype=bool)
    first_of_cluster[1:] = assignment[order][1:] != assignment[order][:-1]
    medoid_of = np.full(clusters, -1, dtype=np.int64)
    medoid_of[assignment[order][first_of_cluster]] = order[first_of_cluster]
    sizes = np.bincount(assignment, minlength=clusters)
    picked: list[int] = []
    taken = np.zeros(n, dtype=bool)
    for cluster in np.argsort(-sizes, kind="stable"):
        item = int(medoid_of[cluster])
        if item < 0:
            distances = ((x - centroids[cluster]) ** 2).sum(axis=1)
            distances[taken] = np.inf
            item = int(np.argmin(distances))
        picked.append(item)
        taken[item] = True
    return np.asarray(picked, dtype=np.int64)


# ---------------------------------------------------------------- vote-k


class VoteGraph:
    """The directed kNN graph of vote-k and its reverse in CSR form.

    `neighbours[v]` are the k items v votes for (its k most similar other items, mean-centred cosine);
    `voters_of(u)` are the items whose kNN contains u. Memory O(n·k).
    """

    def __init__(self, neighbours: np.ndarray) -> None:
        self.neighbours = np.asarray(neighbours, dtype=np.int64)
        n, k = self.neighbours.shape
        self.n, self.k = n, k
        flat = self.neighbours.ravel()
        by_target = np.argsort(flat, kind="stable")  # voters of each target, in ascending voter order
        self.voter_ids = (by_target // max(k, 1)).astype(np.int64)
        self.voter_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(flat, minlength=n), out=self.voter_offsets[1:])

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray, *, k: int = VOTEK_K, block_size: int = 512) -> VoteGraph:
        neighbours, _ = cosine_knn(embeddings, k, block_size=block_size, mean_centre=True)
        return cls(neighbours)

    def voters_of(self, item: int) -> np.ndarray:
        return self.voter_ids[self.voter_offsets[item] : self.voter_offsets[item + 1]]

    def vote_counts(self) -> np.ndarray:
        return np.diff(self.voter_offsets)


class VoteKGreedy:
    """The greedy state of vote-k (Su et al., ICLR 2023), updated incrementally.

    score(u) = Σ over voters v of u that are not selected of ρ^(−cov(v)), cov(v) = how many selected items are
    in v's kNN. Selecting u changes only: u's own vote (removed from its k neighbours' scores) and the votes of
    u's voters (cov + 1, so each of their k neighbours loses (1 − 1/ρ)·ρ^(−cov)). Cost per pick
    O(k · in-degree(u) + n) instead of the O(n·k) rescan of the published code. As in the published code, an
    item with no unselected voter left has no score (−∞) and is never picked.
    """

    def __init__(self, graph: VoteGraph, *, rho: float = VOTEK_RHO) -> None:
        if rho <= 1:
            raise ValueError(f"rho must be greater than 1, got {rho}")
        self.graph = graph
        self.rho = float(rho)
        n, k = graph.n, graph.k
        self.coverage = np.zeros(n, dtype=np.int64)
        self.selected = np.zeros(n, dtype=bool)
        self.scores = np.bincount(graph.neighbours.ravel(), minlength=n).astype(np.float64)  # all weights ρ^0
        self.unselected_voters = graph.vote_counts().copy()
        self.scores[self.unselected_voters == 0] = -np.inf
        self.order: list[int] = []
        self._k = k

    def weight(self, voters: np.ndarray) -> np.ndarray:
        return self.rho ** (-self.coverage[voters].astype(np.float64))

    def best(self, candidates: np.ndarray | None = None) -> int:
        """Index of the best-scoring unselected item (among `candidates` if given); −1 if none can be picked."""
        scores = self.scores if candidates is None else self.scores[candidates]
        if scores.size == 0:
            return -1
        top = scores.max()
        if top == -np.inf:
            return -1
        tied = np.flatnonzero(scores >= top - TIE_TOLERANCE * abs(top))
        if candidates is None:
            return int(tied[0])
        return int(candidates[tied].min())

    def select(self, item: int) -> None:
        graph = self.graph
        if self.selected[item]:
            raise ValueError(f"item {item} is already selected")
        # the item stops voting
        voted_for = graph.neighbours[item]
        self.scores[voted_for] -= self.rho ** (-float(self.coverage[item]))
        self.unselected_voters[voted_for] -= 1
        self.scores[voted_for[self.unselected_voters[voted_for] == 0]] = -np.inf
        self.selected[item] = True
        self.scores[item] = -np.inf
        self.order.append(item)
        # its voters are now covered once more: their remaining votes shrink by a factor ρ
        voters = graph.voters_of(item)
        self.coverage[voters] += 1
        active = voters[~self.selected[voters]]
        if active.size:
            new_weight = self.weight(active)
            delta = new_weight - new_weight * self.rho  # ρ^(−c−1) − ρ^(−c)
            targets = graph.neighbours[active].ravel()
            self.scores += np.bincount(targets, weights=np.repeat(delta, self._k), minlength=graph.n)
        # −∞ + finite stays −∞, so selected and vote-less items stay unpickable


def votek_select(
    embeddings: np.ndarray,
    budget: int,
    *,
    k: int = VOTEK_K,
    rho: float = VOTEK_RHO,
    graph: VoteGraph | None = None,
) -> np.ndarray:
    """Vote-k selective annotation (Su et al., ICLR 2023), one stage: greedy over the mean-centred cosine kNN
    graph (k = 150, ρ = 10). Ties go to the lower index. Returns fewer than `budget` indices only when no
    unselected item has a voter left. Pass a prebuilt `graph` to reuse it across calls.
    """
    graph = graph or VoteGraph.from_embeddings(embeddings, k=k)
    greedy = VoteKGreedy(graph, rho=rho)
    for _ in range(max(0, min(budget, graph.n))):
        item = greedy.best()
        if item < 0:
            break
        greedy.select(item)
    return np.asarray(greedy.order, dtype=np.int64)


def votek_two_stage_select(
    embeddings: np.ndarray,
    confidence: np.ndarray,
    budget: int,
    *,
    k: int = VOTEK_K,
    rho: float = VOTEK_RHO,
    graph: VoteGraph | None = None,
    first_stage: Sequence[int] | None = None,
) -> np.ndarray:
    """Two-stage vote-k: the first M // 10 items by the graph greedy (pass `first_stage` if they were already
    picked — the model's confidence is usually computed with them as demos); then the remaining pool sorted by
    `confidence` ascending (ties: lower index), its least-confident 90% cut into M − M // 10 near-equal
    buckets, and from each bucket (least confident first) the item with the best current vote-k score. Every
    pick updates the greedy coverage, as in stage one. A bucket whose items nobody votes for gives its least
    confident item.
    """
    graph = graph or VoteGraph.from_embeddings(embeddings, k=k)
    greedy = VoteKGreedy(graph, rho=rho)
    budget = max(0, min(budget, graph.n))
    if first_stage is None:
        for _ in range(budget // 10):
            item = greedy.best()
            if item < 0:
                break
            greedy.select(item)
    else:
        for item in first_stage:
            greedy.select(int(item))
    remaining = budget - len(greedy.order)
    if remaining <= 0:
        return np.asarray(greedy.order, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    pool = np.flatnonzero(~greedy.selected)
    pool = pool[np.argsort(confidence[pool], kind="stable")]
    least_confident = pool[: max(remaining, int(0.9 * len(pool)))]
    for bucket in np.array_split(least_confident, remaining):
        if bucket.size == 0:
            continue
        item = greedy.best(bucket)
        greedy.select(item if item >= 0 else int(bucket[0]))
    return np.asarray(greedy.order, dtype=np.int64)
