"""Per-sample signals (annotation.signals) on tiny fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.routing.sample_signals import (
    compute_signals,
    exact_duplicate_of,
    knn_label_agreement,
    near_duplicates,
    student_oof_probabilities,
    student_oof_probability,
    uncertainty_signals,
)


def two_blobs(per_blob: int = 10, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    left = rng.normal(loc=(-5.0, 0.0), scale=0.5, size=(per_blob, 2))
    right = rng.normal(loc=(5.0, 0.0), scale=0.5, size=(per_blob, 2))
    return np.vstack([left, right]), ["neg"] * per_blob + ["pos"] * per_blob


def test_uncertainty_signals_come_from_the_distribution():
    signals = uncertainty_signals(np.array([[0.9, 0.1], [0.5, 0.5]]))
    assert signals["least_confidence"] == pytest.approx([0.1, 0.5])
    assert signals["margin"] == pytest.approx([-0.8, 0.0])
    assert signals["entropy"] == pytest.approx([-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)), np.log(2)])


def test_the_student_backs_consistent_labels_and_doubts_a_flipped_one():
    embeddings, labels = two_blobs()
    labels[3] = "pos"  # an LLM mistake deep inside the negative blob
    probability = student_oof_probability(embeddings, labels)
    assert probability[3] < 0.5
    others = np.delete(probability, 3)
    assert others.min() > 0.5


def test_the_student_survives_a_class_with_a_single_member():
    embeddings, labels = two_blobs()
    labels[0] = "rare"
    oof, classes = student_oof_probabilities(embeddings, labels)
    assert classes == ["rare", "neg", "pos"]
    assert oof.shape == (20, 3)
    # the only "rare" item is never in its own training fold, so the student cannot vouch for it
    assert oof[0, 0] == 0.0
    assert np.allclose(oof[1:].sum(axis=1), 1.0)


def test_the_student_is_neutral_with_a_single_class_or_too_little_data():
    embeddings, _ = two_blobs()
    assert student_oof_probability(embeddings, ["neg"] * 20).tolist() == [1.0] * 20
    assert student_oof_probability(embeddings[:3], ["a", "b", "c"]) == pytest.approx([1 / 3] * 3)


def test_knn_agreement_is_the_share_of_neighbours_with_the_same_label():
    # four points on a line; 1-NN of 0 is 1, of 1 is 0, of 2 is 3 (closer), of 3 is 2
    embeddings = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    labels = ["a", "a", "a", "b"]
    assert knn_label_agreement(embeddings, labels, k=1).tolist() == [1.0, 1.0, 0.0, 0.0]
    # with k = 2, item 0's neighbours are 1 and then 3 (cosine 0.1 vs 0.0 for 2)
    assert knn_label_agreement(embeddings, labels, k=2)[0] == pytest.approx(0.5)


def test_exact_duplicates_point_at_the_first_occurrence():
    assert exact_duplicate_of(["a", "b", "a", "a ", "b"]).tolist() == [-1, -1, 0, -1, 1]


def test_near_duplicates_mark_both_items_of_a_close_pair():
    embeddings = np.array([[1.0, 0.0, 0.0], [0.999, 0.04, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    marks = near_duplicates(embeddings, threshold=0.95)
    assert marks.partner.tolist() == [1, 0, -1, -1]
    assert marks.is_near_duplicate.tolist() == [True, True, False, False]
    assert marks.similarity[0] == pytest.approx(0.999 / np.linalg.norm([0.999, 0.04]), rel=1e-5)


def test_compute_signals_aligns_every_signal_with_the_rows():
    embeddings, labels = two_blobs(per_blob=6)
    probs = np.tile([0.8, 0.2], (12, 1))
    texts = [f"text {i}" for i in range(11)] + ["text 0"]
    signals = compute_signals(probs=probs, llm_labels=labels, embeddings=embeddings, texts=texts, knn_k=3)
    assert signals.least_confidence == pytest.approx([0.2] * 12)
    assert signals.knn_agreement.tolist() == [1.0] * 12
    assert signals.exact_duplicate_of.tolist() == [-1] * 11 + [0]
    assert signals.student_prob.shape == (12,)
