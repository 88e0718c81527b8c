"""The learned router: which LLM labels humans should check next (ALGORITHMS.md §4 "learn from the humans'
corrections"). Plain numpy / scikit-learn, no Django.

Every human answer tells us whether the LLM was right on that item. After each batch of answers the router
fits a classifier predicting "the LLM label is wrong" from per-item features and routes the unreviewed items
with the highest predicted error next. Before there are enough answers of both kinds (cold start) it ranks by
an unsupervised prior instead and says so in the reasons.

How the labelling service calls it (all arrays aligned by row, one row per sample of the labelling run):

    items = RouterItems(
        probs=...,            # (n, L) float: LLM distribution over the codebook labels, columns in codebook order
        llm_label=...,        # (n,) int: column of the LLM's label in `probs`
        student_prob=...,     # (n,) float: signals.student_oof_probability(embeddings, llm labels)
        knn_agreement=...,    # (n,) float: signals.knn_label_agreement(embeddings, llm labels)
        text_length=...,      # (n,) int: len(sample.text)
        conditions=None,      # optional (n, c) float: one-hot generation conditions (see one_hot_conditions)
        neighbours=None,      # optional (n, k) int: cosine_knn(embeddings, k)[0] — lets answers on similar
                              #   items inform each other ("neighbours were wrong")
    )
    batch = route_next_batch(
        items,
        reviewed=np.array([...]),         # row indices humans have answered
        llm_was_wrong=np.array([...]),    # bool per reviewed row: human final label != LLM label
        batch_size=50,
        exclude=np.array([...]),          # rows already routed and still open (never routed twice)
    )
    batch.indices            # rows to route, best first
    batch.error_probability  # predicted P(LLM wrong) per routed row (the cold-start prior when batch.mode == "cold_start")
    batch.reasons            # e.g. "predicted error 0.71; student disagrees with LLM; entropy 0.93"
    batch.mode               # "learned" or "cold_start"

Measured on shared/data/routing/stance.csv (batches of 5%, budget 20%): see bench_routing and the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .selection import entropy, least_confidence, margin_uncertainty

# Fewer answers than this, or answers of only one kind, and the classifier is not trusted yet.
MIN_ANSWERS_TO_LEARN = 20
MIN_ANSWERS_PER_CLASS = 3


@dataclass(frozen=True)
class RouterItems:
    """Per-item inputs of the router; see the module docstring for where each comes from."""

    probs: np.ndarray
    llm_label: np.ndarray
    student_prob: np.ndarray
    knn_agreement: np.ndarray
    text_length: np.ndarray
    conditions: np.ndarray | None = None
    neighbours: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.llm_label)
        for name in ("probs", "student_prob", "knn_agreement", "text_length"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"RouterItems.{name} has {len(getattr(self, name))} rows, llm_label has {n}")
        for name in ("conditions", "neighbours"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"RouterItems.{name} has {len(value)} rows, llm_label has {n}")

    @property
    def n(self) -> int:
        return len(self.llm_label)


@dataclass(frozen=True)
class RoutingBatch:
    indices: np.ndarray
    error_probability: np.ndarray
    reasons: list[str]
    mode: str  # "learned" | "cold_start"
    details: dict = field(default_factory=dict)


def one_hot_conditions(conditions: Sequence[Mapping[str, object]]) -> tuple[np.ndarray, list[str]]:
    """(n, c) one-hot matrix and column names ("topic=sport") from per-sample condition dicts."""
    names = sorted({f"{key}={value}" for row in conditions for key, value in row.items()})
    column = {name: position for position, name in enumerate(names)}
    matrix = np.zeros((len(conditions), len(names)), dtype=np.float64)
    for row_index, row in enumerate(conditions):
        for key, value in row.items():
            matrix[row_index, column[f"{key}={value}"]] = 1.0
    return matrix, names


def _rank_normalise(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (ties share a rank), so signals on different scales can be averaged."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n <= 1:
        return np.zeros(n)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(n, dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    for start, stop in zip(np.r_[0, boundaries], np.r_[boundaries, n], strict=True):
        ranks[order[start:stop]] = (start + stop - 1) / 2
    return ranks / (n - 1)


def prior_error_score(items: RouterItems) -> np.ndarray:
    """Unsupervised "probably wrong" score in [0, 1]: the mean rank of LLM uncertainty (least confidence),
    student disagreement (1 − student prob) and neighbour disagreement (1 − kNN agreement)."""
    parts = [
        _rank_normalise(least_confidence(items.probs)),
        _rank_normalise(1.0 - np.asarray(items.student_prob, dtype=np.float64)),
        _rank_normalise(1.0 - np.asarray(items.knn_agreement, dtype=np.float64)),
    ]
    return np.mean(parts, axis=0)


def neighbour_error_rate(
    items: RouterItems,
    reviewed: np.ndarray,
    llm_was_wrong: np.ndarray,
    *,
    prior: float,
    strength: float = 2.0,
) -> np.ndarray:
    """Per item, the smoothed share of its reviewed neighbours on which the LLM was wrong:
    (wrong + strength·prior) / (reviewed + strength). Items without neighbours get `prior`."""
    n = items.n
    if items.neighbours is None or items.neighbours.shape[1] == 0:
        return np.full(n, prior)
    known = np.full(n, np.nan)
    known[reviewed] = llm_was_wrong.astype(np.float64)
    neighbour_known = known[items.neighbours]
    reviewed_count = np.sum(~np.isnan(neighbour_known), axis=1)
    wrong_count = np.nansum(neighbour_known, axis=1)
    return (wrong_count + strength * prior) / (reviewed_count + strength)


def feature_matrix(
    items: RouterItems, *, neighbour_errors: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """The classifier's features per item and their names."""
    probs = np.asarray(items.probs, dtype=np.float64)
    n, n_labels = probs.shape
    columns: list[np.ndarray] = [
        1.0 - least_confidence(probs),
        entropy(probs),
        -margin_uncertainty(probs),
        np.asarray(items.student_prob, dtype=np.float64),
        np.asarray(items.knn_agreement, dtype=np.float64),
        np.log1p(np.asarray(items.text_length, dtype=np.float64)),
    ]
    names = ["llm_confidence", "llm_entropy", "llm_margin", "student_prob", "knn_agreement", "log_length"]
    label_one_hot = np.zeros((n, n_labels))
    label_one_hot[np.arange(n), np.asarray(items.llm_label, dtype=np.int64)] = 1.0
    columns += list(label_one_hot.T)
    names += [f"llm_label={label}" for label in range(n_labels)]
    if items.conditions is not None:
        conditions = np.asarray(items.conditions, dtype=np.float64)
        columns += list(conditions.T)
        names += [f"condition_{c}" for c in range(conditions.shape[1])]
    if neighbour_errors is not None:
        columns.append(neighbour_errors)
        names.append("neighbour_error_rate")
    return np.column_stack(columns), names


def predict_error(
    items: RouterItems, *, reviewed: np.ndarray, llm_was_wrong: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, str]:
    """P(LLM label wrong) for every item and the mode: "learned" when a classifier could be fitted on the
    answers so far, else "cold_start" (the prior score, which ranks but is not a calibrated probability)."""
    reviewed = np.asarray(reviewed, dtype=np.int64)
    llm_was_wrong = np.asarray(llm_was_wrong, dtype=bool)
    if len(reviewed) != len(llm_was_wrong):
        raise ValueError("reviewed and llm_was_wrong must have the same length")
    wrong = int(llm_was_wrong.sum())
    right = len(llm_was_wrong) - wrong
    if len(reviewed) < MIN_ANSWERS_TO_LEARN or min(wrong, right) < MIN_ANSWERS_PER_CLASS:
        return prior_error_score(items), "cold_start"
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    base_rate = wrong / len(llm_was_wrong)
    features, _ = feature_matrix(
        items, neighbour_errors=neighbour_error_rate(items, reviewed, llm_was_wrong, prior=base_rate)
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, class_weight=None))
    model.fit(features[reviewed], llm_was_wrong)
    return model.predict_proba(features)[:, 1], "learned"


def routing_reason(items: RouterItems, index: int, *, error_probability: float, mode: str) -> str:
    """Why one item was routed, for reviewers and leads."""
    parts = [
        f"predicted error {error_probability:.2f}" if mode == "learned" else "cold start: uncertainty ranking"
    ]
    if items.student_prob[index] < 0.5:
        parts.append("student disagrees with LLM")
    if items.knn_agreement[index] < 0.5:
        parts.append("neighbours labelled differently")
    row_entropy = float(entropy(np.asarray(items.probs)[index : index + 1])[0])
    parts.append(f"entropy {row_entropy:.2f}")
    return "; ".join(parts)


def route_next_batch(
    items: RouterItems,
    *,
    reviewed: np.ndarray,
    llm_was_wrong: np.ndarray,
    batch_size: int,
    exclude: np.ndarray | None = None,
    seed: int = 0,
) -> RoutingBatch:
    """The next `batch_size` unreviewed, not-excluded items by predicted error (ties: lower index)."""
    reviewed = np.asarray(reviewed, dtype=np.int64)
    error_probability, mode = predict_error(items, reviewed=reviewed, llm_was_wrong=llm_was_wrong, seed=seed)
    available = np.ones(items.n, dtype=bool)
    available[reviewed] = False
    if exclude is not None:
        available[np.asarray(exclude, dtype=np.int64)] = False
    candidates = np.flatnonzero(available)
    chosen = candidates[np.argsort(-error_probability[candidates], kind="stable")][: max(0, batch_size)]
    reasons = [
        routing_reason(items, int(i), error_probability=float(error_probability[i]), mode=mode)
        for i in chosen
    ]
    return RoutingBatch(
        indices=chosen.astype(np.int64),
        error_probability=error_probability[chosen],
        reasons=reasons,
        mode=mode,
        details={"answers": len(reviewed), "llm_wrong_in_answers": int(np.sum(llm_was_wrong))},
    )
