"""Vote-k (Su et al., ICLR 2023, "Selective Annotation Makes Language Models Better Few-Shot Learners"):
pick a small set that is representative and diverse over a mean-centred cosine kNN graph (ALGORITHMS.md §3).

Plain numpy, no Django: annotation uses it for cold-start selection (annotation.selection re-exports it) and
generation for choosing in-context demos (generation.demo_selection). Every function takes arrays and returns
an int64 array of selected row indices, in selection order, deterministic (ties go to the lower index).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthstudio.vectors import cosine_knn

VOTEK_K = 150
VOTEK_RHO = 10.0
# Scores within this relative distance of the best count as ties (broken toward the lower index), so float
# rounding in the incremental updates cannot change the order against an exact computation.
TIE_TOLERANCE = 1e-9


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


def earlier_rows(already_selected: np.ndarray | Sequence[int] | None, n: int) -> np.ndarray:
    """The distinct rows of `already_selected` (earlier batches' picks), checked to lie in range(n)."""
    if already_selected is None:
        return np.zeros(0, dtype=np.int64)
    rows = np.unique(np.asarray(already_selected, dtype=np.int64))
    if rows.size and (rows[0] < 0 or rows[-1] >= n):
        raise ValueError(f"already_selected rows must lie in range({n})")
    return rows


def votek_select(
    embeddings: np.ndarray,
    budget: int,
    *,
    k: int = VOTEK_K,
    rho: float = VOTEK_RHO,
    graph: VoteGraph | None = None,
    already_selected: np.ndarray | Sequence[int] | None = None,
) -> np.ndarray:
    """Vote-k selective annotation (Su et al., ICLR 2023), one stage: greedy over the mean-centred cosine kNN
    graph (k = 150, ρ = 10). Ties go to the lower index. Returns fewer than `budget` indices only when no
    unselected item has a voter left. Pass a prebuilt `graph` to reuse it across calls.

    `already_selected` (rows picked in earlier batches, e.g. by routing's cold start) count as selected before
    the first new pick, so their neighbours' votes are already discounted by ρ^(−cov) and they stop voting: the
    greedy goes on where the last batch stopped instead of re-picking the same dense region's next-best items.
    Only new rows are returned, never an earlier pick.
    """
    graph = graph or VoteGraph.from_embeddings(embeddings, k=k)
    greedy = VoteKGreedy(graph, rho=rho)
    earlier = earlier_rows(already_selected, graph.n)
    for item in earlier:
        greedy.select(int(item))
    for _ in range(max(0, min(budget, graph.n - earlier.size))):
        item = greedy.best()
        if item < 0:
            break
        greedy.select(item)
    return np.asarray(greedy.order[earlier.size :], dtype=np.int64)


def votek_two_stage_select(
    embeddings: np.ndarray,
    confidence: np.ndarray,
    budget: int,
    *,
    k: int = VOTEK_K,
    rho: float = VOTEK_RHO,
    graph: VoteGraph | None = None,
    first_stage: Sequence[int] | None = None,
    already_selected: np.ndarray | Sequence[int] | None = None,
) -> np.ndarray:
    """Two-stage vote-k: the first M // 10 items by the graph greedy (pass `first_stage` if they were already
    picked — the model's confidence is usually computed with them as demos); then the remaining pool sorted by
    `confidence` ascending (ties: lower index), its least-confident 90% cut into M − M // 10 near-equal
    buckets, and from each bucket (least confident first) the item with the best current vote-k score. Every
    pick updates the greedy coverage, as in stage one. A bucket whose items nobody votes for gives its least
    confident item.

    With `already_selected` (earlier batches' picks, which humans have labelled) those are the first stage and
    all `budget` new picks come from the confidence buckets, the greedy coverage counting the earlier picks;
    only new rows are returned. `confidence` is whatever the caller has per row; routing passes the current LLM
    label's top probability, which is the paper's "confidence of the in-context model" only when the labels
    were made with the human-verified items as demos.
    """
    graph = graph or VoteGraph.from_embeddings(embeddings, k=k)
    earlier = earlier_rows(already_selected, graph.n)
    if earlier.size:
        if first_stage is not None:
            raise ValueError("pass first_stage or already_selected, not both")
        picks = votek_two_stage_select(
            embeddings,
            confidence,
            budget + earlier.size,
            k=k,
            rho=rho,
            graph=graph,
            first_stage=earlier.tolist(),
        )
        return np.asarray(picks[earlier.size :], dtype=np.int64)
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
