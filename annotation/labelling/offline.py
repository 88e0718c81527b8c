"""The offline labeller: zero-shot labels from sentence embeddings, used when no LLM endpoint is configured.

No Django. Each label is described by its codebook texts (name + description, and each example); a text's
score for a label is its highest cosine similarity to any of them; a softmax with a temperature turns the
scores into a real distribution (a real model's opinion, not a stand-in number). Results are marked
"offline" wherever they show.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from annotation.labelling.distributions import CodebookSpec, LabelReading
from synthstudio.vectors import normalise_rows

DEFAULT_TEMPERATURE = 0.05
OFFLINE_MODEL_NAME = "offline embedding zero-shot"


def label_texts(codebook: CodebookSpec) -> tuple[list[str], list[int]]:
    """Texts describing each label and, per text, the index of its label."""
    texts: list[str] = []
    owners: list[int] = []
    for index, label in enumerate(codebook.labels):
        head = f"{label.name}: {label.description}".strip(": ") if label.description else label.name
        for text in [head, *label.examples]:
            if text.strip():
                texts.append(text.strip())
                owners.append(index)
    return texts, owners


def zero_shot_scores(
    text_vectors: np.ndarray, label_vectors: np.ndarray, owners: Sequence[int], n_labels: int
) -> np.ndarray:
    """(n_texts, n_labels) best cosine similarity of each text to any of each label's texts."""
    texts = normalise_rows(np.atleast_2d(text_vectors)).astype(np.float64)
    labels = normalise_rows(np.atleast_2d(label_vectors)).astype(np.float64)
    similarity = texts @ labels.T
    owners_array = np.asarray(owners)
    scores = np.full((texts.shape[0], n_labels), -1.0, dtype=np.float64)
    for label_index in range(n_labels):
        columns = owners_array == label_index
        if columns.any():
            scores[:, label_index] = similarity[:, columns].max(axis=1)
    return scores


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    scaled = np.asarray(scores, dtype=np.float64) / max(temperature, 1e-6)
    scaled -= scaled.max(axis=1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=1, keepdims=True)


def offline_readings(
    text_vectors: np.ndarray,
    label_vectors: np.ndarray,
    owners: Sequence[int],
    codebook: CodebookSpec,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
) -> list[LabelReading]:
    """One reading per text: softmax(best similarity per label / temperature)."""
    names = codebook.label_names
    scores = zero_shot_scores(text_vectors, label_vectors, owners, len(names))
    probabilities = softmax(scores, temperature)
    readings = []
    for row_scores, row in zip(scores, probabilities, strict=True):
        distribution = {name: float(p) for name, p in zip(names, row, strict=True)}
        best = int(np.argmax(row))
        readings.append(
            LabelReading(
                names[best],
                distribution,
                True,
                confidence=float(row[best]),
                rationale="offline: nearest codebook description/example by embedding similarity",
                details={
                    "similarities": {
                        name: round(float(s), 4) for name, s in zip(names, row_scores, strict=True)
                    }
                },
            )
        )
    return readings
