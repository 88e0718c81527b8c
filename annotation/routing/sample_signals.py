"""Per-sample signals that say how far to trust an LLM label (ALGORITHMS.md §3–5). Plain numpy / scikit-learn.

Inputs are arrays aligned by row: `probs` (n, L) the LLM's distribution over the codebook's labels,
`llm_labels` (n,) the LLM's label per row (any hashable values, e.g. label names or column indices),
`embeddings` (n, d) sentence embeddings, `texts` (n,) the sample texts.

- uncertainty: least confidence, margin, entropy (from `annotation.routing.selection`);
- `student_oof_probability`: a logistic-regression student trained on the LLM labels, scored out of fold —
  low values mean the student, which never saw the item, disagrees with the LLM (FreeAL / confident
  learning style);
- `knn_label_agreement`: the share of an item's nearest neighbours that carry the same LLM label;
- `exact_duplicate_of` / `near_duplicates`: duplicate markers.
`compute_signals` returns them all at once for the labelling service and the router.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from annotation.routing.selection import entropy, least_confidence, margin_uncertainty
from synthstudio.vectors import cosine_knn

STUDENT_FOLDS = 5
KNN_AGREEMENT_K = 10
NEAR_DUPLICATE_THRESHOLD = 0.95


def uncertainty_signals(probs: np.ndarray) -> dict[str, np.ndarray]:
    """{"least_confidence", "margin", "entropy"} per row of an (n, L) distribution matrix."""
    return {
        "least_confidence": least_confidence(probs),
        "margin": margin_uncertainty(probs),
        "entropy": entropy(probs),
    }


def encode_labels(labels: Sequence[Hashable]) -> tuple[np.ndarray, list[Hashable]]:
    """(codes, classes): codes[i] is the position of labels[i] in classes (first-seen order)."""
    classes = list(dict.fromkeys(labels))
    position = {label: code for code, label in enumerate(classes)}
    return np.asarray([position[label] for label in labels], dtype=np.int64), classes


def student_oof_probabilities(
    embeddings: np.ndarray,
    labels: Sequence[Hashable],
    *,
    folds: int = STUDENT_FOLDS,
    seed: int = 0,
    regularisation: float = 1.0,
) -> tuple[np.ndarray, list[Hashable]]:
    """Out-of-fold class probabilities of a logistic-regression student trained on `labels`.

    Returns (probabilities (n, C), classes): each row comes from a model fitted without that row
    (StratifiedKFold). Robust to rare classes: a class absent from a fold's training part gets probability 0
    in that fold (the student cannot vouch for it); with a single class overall every row gets 1.0; with fewer
    than 2 rows per fold the folds shrink to what the data allows.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = np.asarray(embeddings, dtype=np.float64)
    codes, classes = encode_labels(labels)
    n, n_classes = len(codes), len(classes)
    oof = np.zeros((n, n_classes), dtype=np.float64)
    if n_classes <= 1:
        oof[:, :] = 1.0
        return oof, classes
    largest_class = int(np.bincount(codes).max())
    n_splits = max(2, min(folds, largest_class, n // 2))
    if n < 4 or largest_class < 2:
        # too little data to hold anything out: the student cannot say anything, so it is neutral
        oof[:, :] = 1.0 / n_classes
        return oof, classes
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has only 1 member" is expected and handled
        for train, held_out in splitter.split(x, codes):
            present = np.unique(codes[train])
            if present.size == 1:
                oof[np.ix_(held_out, present)] = 1.0
                continue
            student = LogisticRegression(C=regularisation, max_iter=1000)
            student.fit(x[train], codes[train])
            oof[np.ix_(held_out, student.classes_)] = student.predict_proba(x[held_out])
    return oof, classes


def student_oof_probability(
    embeddings: np.ndarray, labels: Sequence[Hashable], *, folds: int = STUDENT_FOLDS, seed: int = 0
) -> np.ndarray:
    """Per row, the out-of-fold student probability of that row's own label (n,)."""
    oof, _ = student_oof_probabilities(embeddings, labels, folds=folds, seed=seed)
    codes, _ = encode_labels(labels)
    return oof[np.arange(len(codes)), codes]


def knn_label_agreement(
    embeddings: np.ndarray,
    labels: Sequence[Hashable],
    *,
    k: int = KNN_AGREEMENT_K,
    neighbours: np.ndarray | None = None,
) -> np.ndarray:
    """Share of each item's k nearest neighbours (cosine) whose label equals the item's own label.

    Pass `neighbours` (n, k) from `synthstudio.vectors.cosine_knn` to reuse a graph. An item with no
    neighbour (n = 1) gets 1.0: nothing contradicts it.
    """
    codes, _ = encode_labels(labels)
    if neighbours is None:
        neighbours, _ = cosine_knn(embeddings, k)
    if neighbours.shape[1] == 0:
        return np.ones(len(codes), dtype=np.float64)
    return (codes[neighbours] == codes[:, None]).mean(axis=1)


def exact_duplicate_of(texts: Sequence[str]) -> np.ndarray:
    """For each text, the index of the first earlier text with the same SHA-256 (same as
    synthstudio.models.text_hash), or −1 for the first occurrence."""
    first_seen: dict[str, int] = {}
    result = np.full(len(texts), -1, dtype=np.int64)
    for index, text in enumerate(texts):
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest in first_seen:
            result[index] = first_seen[digest]
        else:
            first_seen[digest] = index
    return result


@dataclass(frozen=True)
class NearDuplicates:
    """partner[i]: the most similar other item if its cosine ≥ threshold, else −1; similarity[i]: that cosine
    (the nearest neighbour's cosine whether or not it passes). Both items of a pair are marked."""

    partner: np.ndarray
    similarity: np.ndarray

    @property
    def is_near_duplicate(self) -> np.ndarray:
        return self.partner >= 0


def near_duplicates(
    embeddings: np.ndarray,
    *,
    threshold: float = NEAR_DUPLICATE_THRESHOLD,
    neighbours: np.ndarray | None = None,
    similarities: np.ndarray | None = None,
) -> NearDuplicates:
    """Near-duplicate markers from the cosine kNN (not mean-centred). Pass a prebuilt (neighbours,
    similarities) from cosine_knn to reuse it; only the nearest neighbour is needed."""
    if neighbours is None or similarities is None:
        neighbours, similarities = cosine_knn(embeddings, 1)
    n = neighbours.shape[0]
    if neighbours.shape[1] == 0:
        return NearDuplicates(np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.float64))
    nearest = neighbours[:, 0].astype(np.int64)
    similarity = similarities[:, 0].astype(np.float64)
    partner = np.where(similarity >= threshold, nearest, -1)
    return NearDuplicates(partner, similarity)


@dataclass(frozen=True)
class SampleSignals:
    """All per-sample signals, aligned with the input rows. `student_prob` is the out-of-fold student
    probability of the LLM's label; `knn_agreement` the share of neighbours with the same LLM label."""

    least_confidence: np.ndarray
    margin: np.ndarray
    entropy: np.ndarray
    student_prob: np.ndarray
    knn_agreement: np.ndarray
    exact_duplicate_of: np.ndarray
    near_duplicate_of: np.ndarray
    nearest_similarity: np.ndarray


def compute_signals(
    *,
    probs: np.ndarray,
    llm_labels: Sequence[Hashable],
    embeddings: np.ndarray,
    texts: Sequence[str],
    knn_k: int = KNN_AGREEMENT_K,
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD,
    seed: int = 0,
) -> SampleSignals:
    """Every signal for n samples from one kNN graph (O(n·k) memory)."""
    neighbours, similarities = cosine_knn(embeddings, knn_k)
    uncertainty = uncertainty_signals(probs)
    duplicates = near_duplicates(
        embeddings, threshold=near_duplicate_threshold, neighbours=neighbours, similarities=similarities
    )
    return SampleSignals(
        least_confidence=uncertainty["least_confidence"],
        margin=uncertainty["margin"],
        entropy=uncertainty["entropy"],
        student_prob=student_oof_probability(embeddings, llm_labels, seed=seed),
        knn_agreement=knn_label_agreement(embeddings, llm_labels, neighbours=neighbours),
        exact_duplicate_of=exact_duplicate_of(texts),
        near_duplicate_of=duplicates.partner,
        nearest_similarity=duplicates.similarity,
    )
