"""Which candidates the next routing batch sends to humans, and why — the pure part of routing (no Django).

The strategies themselves are annotation.selection's (the learned router plans its own batches in
annotation.router); this module applies one to the items still eligible (not routed yet, not verified by a
human), cuts the batch, and writes the reason a reviewer and a lead see for each pick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotation.routing import selection

UNCERTAINTY_REASON = {"least_confidence": "least confidence", "margin": "margin", "entropy": "entropy"}
DIVERSITY_STRATEGIES = ("random", "kmeans", "votek")


@dataclass(frozen=True)
class RoutingPick:
    index: int  # row of the arrays passed in
    priority: float  # higher is served first
    reason: str


def plan_routing_batch(
    *,
    strategy: str,
    probs: np.ndarray,
    candidates: np.ndarray,
    size: int,
    embeddings: np.ndarray | None = None,
    student_disagrees: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    seed: int = 0,
) -> list[RoutingPick]:
    """Pick up to `size` of `candidates` (row indices into `probs`/`embeddings`) by `strategy`.

    probs: (n, L) LLM distributions (rows of invalid answers may be anything; `valid` False marks them and
    they count as maximally uncertain). The learned strategy is annotation.router's own batch planner.
    Picks come most wanted first with descending priority.
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    size = max(0, min(size, len(candidates)))
    if size == 0:
        return []
    matrix = selection.as_probability_matrix(probs)
    if valid is not None:
        matrix = matrix.copy()
        matrix[~np.asarray(valid, dtype=bool)] = 1.0 / matrix.shape[1]
    pool = matrix[candidates]

    def reason_suffix(row: int) -> str:
        extra = []
        if valid is not None and not valid[row]:
            extra.append("no valid LLM label")
        if student_disagrees is not None and student_disagrees[row]:
            extra.append("student disagrees with LLM")
        return ("; " + "; ".join(extra)) if extra else ""

    if strategy in UNCERTAINTY_REASON:
        scores = selection.uncertainty_scores(pool, strategy)
        order = np.argsort(-scores, kind="stable")[:size]
        name = UNCERTAINTY_REASON[strategy]
        shown = np.abs(scores) if strategy == "margin" else scores
        return [
            RoutingPick(
                int(candidates[i]), float(scores[i]), f"{name} {shown[i]:.2f}" + reason_suffix(candidates[i])
            )
            for i in order
        ]
    if strategy == "coannotating":
        llm_share = 1.0 - size / len(candidates)
        _, human = selection.coannotating_allocate(pool, llm_share)
        scores = selection.entropy(pool)
        return [
            RoutingPick(
                int(candidates[i]),
                float(scores[i]),
                f"entropy over prompt variants {scores[i]:.2f}" + reason_suffix(candidates[i]),
            )
            for i in human[:size]
        ]
    if strategy == "random":
        order = selection.random_select(len(candidates), size, seed=seed)
        reason = "random pick"
    elif strategy in ("kmeans", "votek", "votek_two_stage"):
        if embeddings is None:
            raise ValueError(f"the {strategy} strategy needs embeddings")
        vectors = np.asarray(embeddings)[candidates]
        if strategy == "kmeans":
            order = selection.kmeans_select(vectors, size, seed=seed)
            reason = "k-means: nearest to a cluster centre"
        elif strategy == "votek":
            order = selection.votek_select(
                vectors, size, k=min(selection.VOTEK_K, max(1, len(candidates) - 1))
            )
            reason = "vote-k: representative of many items"
        else:
            confidence = pool.max(axis=1)
            order = selection.votek_two_stage_select(
                vectors, confidence, size, k=min(selection.VOTEK_K, max(1, len(candidates) - 1))
            )
            reason = "vote-k two-stage: representative and uncertain"
    else:
        raise ValueError(f"unknown routing strategy {strategy!r}")
    ranked = list(order)
    return [
        RoutingPick(int(candidates[i]), float(len(ranked) - rank), reason + reason_suffix(candidates[i]))
        for rank, i in enumerate(ranked)
    ]
