"""The wording (TF-IDF) student and the averaged ensemble of the refinement core."""

import numpy as np

from evaluation.curation.student import (
    ensemble_probabilities,
    precision_at,
    refine_labels,
    student_probabilities,
    tfidf_features,
)

POSITIVE = [
    "a wonderful film",
    "wonderful acting",
    "truly wonderful",
    "a wonderful story",
    "wonderful and warm",
]
NEGATIVE = ["a dreadful film", "dreadful acting", "truly dreadful", "a dreadful story", "dreadful and cold"]


def wording_data(copies=4):
    texts = (POSITIVE + NEGATIVE) * copies
    gold = np.array(([0] * len(POSITIVE) + [1] * len(NEGATIVE)) * copies)
    return texts, gold


def test_the_wording_student_learns_from_sparse_tfidf_features():
    texts, gold = wording_data()
    probabilities = student_probabilities(tfidf_features(texts), gold, n_classes=2, C=3.0)
    assert (probabilities.argmax(axis=1) == gold).all()


def test_without_texts_the_ensemble_is_the_embedding_student():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20, 3))
    labels = np.array([0, 1] * 10)
    assert np.array_equal(
        ensemble_probabilities(features, labels, n_classes=2),
        student_probabilities(features, labels, n_classes=2),
    )


def test_with_texts_the_ensemble_averages_both_students():
    texts, gold = wording_data()
    features = np.random.default_rng(1).normal(size=(len(texts), 4))  # embeddings that carry no signal
    words = tfidf_features(texts)
    averaged = ensemble_probabilities(features, gold, n_classes=2, text_features=words)
    expected = (
        student_probabilities(features, gold, n_classes=2)
        + student_probabilities(words, gold, n_classes=2, C=3.0)
    ) / 2
    assert np.allclose(averaged, expected)
    assert np.allclose(averaged.sum(axis=1), 1.0)


def test_the_wording_student_finds_flipped_labels_that_the_embeddings_cannot_see():
    texts, gold = wording_data(copies=6)
    given = gold.copy()
    flipped = {3, 17, 42}
    given[list(flipped)] = 1 - given[list(flipped)]
    features = np.random.default_rng(2).normal(size=(len(texts), 4))
    result = refine_labels(
        features, given, np.zeros(len(given), dtype=bool), n_classes=2, text_features=tfidf_features(texts)
    )
    assert precision_at(result.issues, flipped, len(flipped)) == 1.0
