"""Which candidates the next routing batch sends to humans, and why — the pure part of routing (no Django).

The strategies themselves are annotation.selection's (the learned router plans its own batches in
annotation.router); this module applies one to the items still eligible (not routed yet, not verified by a
human), cuts the batch, and writes the reason a lead sees for each pick (annotators never see it).

Every pick carries the probability with which its policy picked it (ALGORITHMS.md §8): 1 for a deterministic
top-k pick, size / candidates for a uniformly random one, the recorded Poisson π for a draw. Every batch keeps an
audit slice (`plan_audit_slice`): before the strategy picks, `audit_share` of the batch (an expected count) is
drawn by Poisson sampling over all candidates, π mixing uniform and the LLM's uncertainty; the strategy fills the
rest of the batch from the candidates not drawn. The "sample for estimation" strategy (`plan_estimation_batch`)
makes the whole batch such a draw. The sampling itself is annotation.routing.audit's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from annotation.routing import audit, selection

UNCERTAINTY_REASON = {"least_confidence": "least confidence", "margin": "margin", "entropy": "entropy"}
DIVERSITY_STRATEGIES = ("random", "kmeans", "votek")


@dataclass(frozen=True)
class RoutingPick:
    index: int  # row of the arrays passed in
    priority: float  # higher is served first
    reason: str
    inclusion_probability: float = 1.0  # π: 1 for a deterministic pick, the recorded probability for a draw
    is_audit: bool = False  # drawn with a known π < 1 over every candidate (audit slice, estimation)


# The audit slice's π: half spread evenly (every candidate's floor), half ∝ √(least confidence); the estimation
# strategy leans harder on uncertainty. √ because for a 0/1 error with probability u the variance-minimising π is
# ∝ √(u(1 − u)) ≈ √u where u is small. The estimation floor, measured with bench_estimates on stance.csv (200
# trials, LLM accuracy): share 0.2 → width 0.749 of human-only but coverage of the 90 % interval 0.875 (tiny π
# give a few huge inverse weights); 0.35 → width 0.755, coverage 0.925 (prevalence 0.94).
AUDIT_UNIFORM_SHARE = 0.5
ESTIMATION_UNIFORM_SHARE = 0.35


def _entropy_over(sources: Sequence[str] | None, row: int) -> str:
    """CoAnnotating's reason names what produced the distribution: the paper's entropy is over prompt variants'
    answers; over token logprobs or a verbalised confidence it is plain entropy, and the reason says so."""
    source = sources[row] if sources is not None else ""
    return f"entropy over {source}" if source else "entropy of the LLM's label distribution"


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
    already_selected: np.ndarray | None = None,
    distribution_sources: Sequence[str] | None = None,
) -> list[RoutingPick]:
    """Pick up to `size` of `candidates` (row indices into `probs`/`embeddings`) by `strategy`.

    probs: (n, L) LLM distributions (rows of invalid answers may be anything; `valid` False marks them and
    they count as maximally uncertain). The learned strategy is annotation.router's own batch planner.
    already_selected: rows humans already have (earlier batches' picks, verified items); k-means and vote-k
    continue from them (annotation.routing.selection) instead of restarting from scratch.
    distribution_sources: per row, what produced its distribution ("5 prompt variants", "token logprobs";
    annotation.routing.provenance), named in CoAnnotating's reasons.
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
                f"{_entropy_over(distribution_sources, candidates[i])} {scores[i]:.2f}"
                + reason_suffix(candidates[i]),
            )
            for i in human[:size]
        ]
    if strategy == "random":
        order = selection.random_select(len(candidates), size, seed=seed)
        reason = "random pick"
    elif strategy in ("kmeans", "votek", "votek_two_stage"):
        if embeddings is None:
            raise ValueError(f"the {strategy} strategy needs embeddings")
        # the earlier picks sit after the candidates, so the picks (candidates only) index `candidates` as before
        earlier = np.setdiff1d(
            np.asarray([] if already_selected is None else already_selected, np.int64), candidates
        )
        rows = np.concatenate([candidates, earlier])
        carried = np.arange(len(candidates), len(rows))
        vectors = np.asarray(embeddings)[rows]
        k = min(selection.VOTEK_K, max(1, len(rows) - 1))
        if strategy == "kmeans":
            order = selection.kmeans_select(vectors, size, seed=seed, already_selected=carried)
            reason = "k-means: nearest to " + (
                "the centre of a cluster no earlier pick is in" if earlier.size else "a cluster centre"
            )
        elif strategy == "votek":
            order = selection.votek_select(vectors, size, k=k, already_selected=carried)
            reason = "vote-k: representative of many items" + (" not covered yet" if earlier.size else "")
        else:
            confidence = matrix[rows].max(axis=1)
            order = selection.votek_two_stage_select(vectors, confidence, size, k=k, already_selected=carried)
            reason = "vote-k two-stage: representative and uncertain"
    else:
        raise ValueError(f"unknown routing strategy {strategy!r}")
    ranked = list(order)
    # a uniformly random pick of `size` among the candidates; the diversity strategies are deterministic
    inclusion = size / len(candidates) if strategy == "random" else 1.0
    return [
        RoutingPick(
            int(candidates[i]),
            float(len(ranked) - rank),
            reason + reason_suffix(candidates[i]),
            inclusion_probability=inclusion,
        )
        for rank, i in enumerate(ranked)
    ]


def routing_uncertainty(probs: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """√(1 − max p) per row, the uncertainty the audit slice and the estimation strategy weight their draws by;
    rows without a valid LLM label count as uniform (the most uncertain)."""
    matrix = selection.as_probability_matrix(probs)
    if valid is not None:
        matrix = matrix.copy()
        matrix[~np.asarray(valid, dtype=bool)] = 1.0 / matrix.shape[1]
    return np.sqrt(selection.least_confidence(matrix))


def _poisson_picks(
    *,
    uncertainty: np.ndarray,
    candidates: np.ndarray,
    expected: float,
    room: int,
    uniform_share: float,
    seed: int | tuple[int, ...],
    reason: str,
) -> list[RoutingPick]:
    candidates = np.asarray(candidates, dtype=np.int64)
    if expected <= 0 or room <= 0 or len(candidates) == 0:
        return []
    pi = audit.inclusion_probabilities(
        np.asarray(uncertainty)[candidates], expected=expected, uniform_share=uniform_share
    )
    draw = audit.poisson_draw(pi, room=room, rng=np.random.default_rng(seed))
    return [
        RoutingPick(
            int(candidates[i]),
            float(p),
            f"{reason} (π = {p:.2g})",
            inclusion_probability=float(p),
            is_audit=True,
        )
        for i, p in sorted(zip(draw.indices, draw.probabilities, strict=True), key=lambda pair: -pair[1])
    ]


def plan_audit_slice(
    *,
    probs: np.ndarray,
    candidates: np.ndarray,
    size: int,
    audit_share: float,
    room: int,
    valid: np.ndarray | None = None,
    seed: int | tuple[int, ...] = 0,
) -> list[RoutingPick]:
    """The audit slice of a batch of `size`: each candidate drawn independently with π_i, Σ π = audit_share · size,
    half uniform and half ∝ `routing_uncertainty`, at most `room` kept (the batch size; see
    annotation.routing.audit for the π recorded then). Drawn first, over every candidate, so the strategy cannot
    shape it; the strategy fills the batch from the others. audit_share = 0 draws nothing."""
    return _poisson_picks(
        uncertainty=routing_uncertainty(probs, valid),
        candidates=candidates,
        expected=audit_share * size,
        room=room,
        uniform_share=AUDIT_UNIFORM_SHARE,
        seed=seed,
        reason="audit draw",
    )


def plan_estimation_batch(
    *,
    probs: np.ndarray,
    candidates: np.ndarray,
    size: int,
    room: int,
    valid: np.ndarray | None = None,
    predicted_error: np.ndarray | None = None,
    seed: int | tuple[int, ...] = 0,
) -> list[RoutingPick]:
    """The "sample for estimation" strategy (confidence-driven inference; Gligorić, Zrnic, Lee, Candès, Jurafsky,
    NAACL 2025), adaptive batch by batch: the whole batch is a Poisson draw with Σ π = size, π ∝ an uncertainty
    mixed with a uniform floor, so the human answers give the narrowest unbiased intervals. The uncertainty is
    √(p (1 − p)) of `predicted_error` p — the learned router's P(LLM wrong), refitted on the answers before the
    batch (the standard deviation of "the LLM is right", which is what an estimate's residual is made of) — and
    √(1 − confidence) before the router has learned. The batch's size varies around `size`; at most `room` are
    kept."""
    if predicted_error is None:
        uncertainty, reason = routing_uncertainty(probs, valid), "sampled for estimation"
    else:
        p = np.clip(np.asarray(predicted_error, dtype=np.float64), 0.0, 1.0)
        uncertainty, reason = (
            np.sqrt(p * (1 - p)),
            "sampled for estimation by the learned router's predicted error",
        )
    return _poisson_picks(
        uncertainty=uncertainty,
        candidates=candidates,
        expected=float(size),
        room=room,
        uniform_share=ESTIMATION_UNIFORM_SHARE,
        seed=seed,
        reason=reason,
    )


def merge_audit_picks(audit_picks: list[RoutingPick], picks: list[RoutingPick]) -> list[RoutingPick]:
    """The batch: the strategy's picks in their order, the audit draws spread evenly among them with the priority of
    the pick they stand beside, so the queue's order does not set them apart."""
    if not picks or not audit_picks:
        return [*picks, *audit_picks]
    merged = list(picks)
    step = len(picks) / len(audit_picks)
    for number, pick in enumerate(audit_picks):
        beside = picks[min(len(picks) - 1, int(number * step))]
        merged.append(
            RoutingPick(pick.index, beside.priority, pick.reason, pick.inclusion_probability, is_audit=True)
        )
    return merged
