"""Downstream benchmark core (no Django): train a classifier on one labelled set, score it on a human-labelled
held-out set (survey §3.3, "benchmark evaluation": compare raw LLM labels vs curated vs human-only).

Two models: logistic regression on sentence embeddings, and logistic regression on TF-IDF word n-grams.
A training set may carry per-sample weights (the final-label rule's, or held_out_loss_weights learned against
the human-verified items); its weighted rows are reported beside the unweighted ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import BinaryIO

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from evaluation.preferences.files import read_rows

EMBEDDING_MODEL = "embedding + logistic regression"
TFIDF_MODEL = "TF-IDF + logistic regression"


@dataclass(frozen=True)
class BenchmarkScore:
    training_set: str
    model: str
    n_train: int
    n_test: int
    accuracy: float | None
    macro_f1: float | None
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _score(predicted: Sequence[str], truth: Sequence[str]) -> tuple[float, float]:
    labels = sorted(set(truth))
    return (
        float(accuracy_score(truth, predicted)),
        float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
    )


def _constant(label: str, n: int) -> list[str]:
    return [label] * n


def held_out_loss_weights(
    *,
    train_vectors: np.ndarray,
    train_labels: Sequence[str],
    validation_vectors: np.ndarray,
    validation_labels: Sequence[str],
) -> np.ndarray:
    """Per-sample weights learned against a human-verified validation set: held-out-loss reweighting.

    A logistic regression fitted on the validation items alone scores every training item; the item's weight
    is exp(-loss) = p_validation(given label | text), rescaled to mean 1. Items whose label the human-verified
    data contradicts weigh little; consistent ones weigh more. This is the one-step form of the bilevel
    problem SunGen (Gao et al. 2023) solves — choose weights so the weighted model's validation loss is
    lowest — chosen because the bilevel version needs an inner training loop differentiated through and a
    validation set large enough not to be overfitted by thousands of free weights, while a project usually
    has a few dozen to a few hundred human-verified items: one model fitted on them is stable, and the
    weights cost one fit. Fewer than two validation labels: every weight is 1 (nothing to learn from).
    """
    n = len(train_labels)
    if n == 0 or len(set(validation_labels)) < 2:
        return np.ones(n)
    model = LogisticRegression(max_iter=1000)
    model.fit(validation_vectors, list(validation_labels))
    column = {label: j for j, label in enumerate(model.classes_)}
    probabilities = model.predict_proba(train_vectors)
    weights = np.array(
        [probabilities[i, column[label]] if label in column else 0.0 for i, label in enumerate(train_labels)]
    )
    total = weights.sum()
    return weights * n / total if total > 0 else np.ones(n)


def embedding_classifier_scores(
    *,
    train_vectors: np.ndarray,
    train_labels: Sequence[str],
    test_vectors: np.ndarray,
    test_labels: Sequence[str],
    sample_weight: Sequence[float] | None = None,
) -> tuple[float, float, str]:
    if len(set(train_labels)) < 2:
        # one class seen: a classifier cannot be fitted; the honest prediction is that class everywhere
        return (*_score(_constant(train_labels[0], len(test_labels)), test_labels), "one class in training")
    model = LogisticRegression(max_iter=1000)
    model.fit(train_vectors, list(train_labels), sample_weight=sample_weight)
    return (*_score(model.predict(test_vectors).tolist(), test_labels), "")


def tfidf_classifier_scores(
    *,
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    test_texts: Sequence[str],
    test_labels: Sequence[str],
    sample_weight: Sequence[float] | None = None,
) -> tuple[float, float, str]:
    if len(set(train_labels)) < 2:
        return (*_score(_constant(train_labels[0], len(test_labels)), test_labels), "one class in training")
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), max_features=50_000, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
    )
    train_matrix = vectorizer.fit_transform(train_texts)
    model = LogisticRegression(max_iter=1000)
    model.fit(train_matrix, list(train_labels), sample_weight=sample_weight)
    return (*_score(model.predict(vectorizer.transform(test_texts)).tolist(), test_labels), "")


def benchmark_training_set(
    *,
    name: str,
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    train_vectors: np.ndarray | None,
    test_texts: Sequence[str],
    test_labels: Sequence[str],
    test_vectors: np.ndarray | None,
    sample_weight: Sequence[float] | None = None,
) -> list[BenchmarkScore]:
    """Scores of both models trained on one set (weighted when sample_weight is given). Empty sets give rows
    with no numbers and a note."""
    n_train, n_test = len(train_labels), len(test_labels)
    if n_train == 0 or n_test == 0:
        note = "no training items" if n_train == 0 else "no test items"
        return [
            BenchmarkScore(name, model, n_train, n_test, None, None, note)
            for model in (EMBEDDING_MODEL, TFIDF_MODEL)
        ]
    rows = []
    if train_vectors is not None and test_vectors is not None:
        accuracy, f1, note = embedding_classifier_scores(
            train_vectors=train_vectors,
            train_labels=train_labels,
            test_vectors=test_vectors,
            test_labels=test_labels,
            sample_weight=sample_weight,
        )
        rows.append(BenchmarkScore(name, EMBEDDING_MODEL, n_train, n_test, accuracy, f1, note))
    accuracy, f1, note = tfidf_classifier_scores(
        train_texts=train_texts,
        train_labels=train_labels,
        test_texts=test_texts,
        test_labels=test_labels,
        sample_weight=sample_weight,
    )
    rows.append(BenchmarkScore(name, TFIDF_MODEL, n_train, n_test, accuracy, f1, note))
    return rows


def split_held_out(ids: Sequence[int], *, fraction: float, seed: int) -> set[int]:
    """A reproducible random share of ids for the held-out test set (at least one when there are any)."""
    if not ids:
        return set()
    rng = np.random.default_rng(seed)
    size = max(1, int(round(len(ids) * fraction)))
    return {int(i) for i in rng.choice(np.asarray(sorted(ids)), size=min(size, len(ids)), replace=False)}


def _cell_text(value: object) -> str:
    """A JSON scalar as text (a `true` label reads "True", as it always did); "" for null (or a short CSV row),
    an object or an array."""
    return str(value).strip() if isinstance(value, str | int | float) else ""


def read_test_file(source: bytes | BinaryIO, name: str) -> list[dict]:
    """A held-out test set from CSV (text,label columns), a JSON list or JSONL of {text, label}, streamed
    through the upload readers (their limits apply). ValueError (PairwiseFileError for a file the readers
    refuse) names the row."""
    out = []
    for number, row in read_rows(source, name):
        if not _cell_text(row.get("text")) or not _cell_text(row.get("label")):
            raise ValueError(f"row {number} needs a text and a label")
        out.append({"text": str(row["text"]), "label": str(row["label"])})
    if not out:
        raise ValueError("no rows")
    return out
