"""The learned router core (annotation.router): cold start, learning from answers, reasons."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.routing import router as router_module
from annotation.routing.router import (
    RouterItems,
    _rank_normalise,
    human_student_probability,
    neighbour_error_rate,
    one_hot_conditions,
    predict_error,
    prior_error_score,
    route_next_batch,
)


def make_items(n: int = 120, seed: int = 0, neighbours: np.ndarray | None = None) -> RouterItems:
    rng = np.random.default_rng(seed)
    llm_label = np.arange(n) % 3
    confidence = rng.uniform(0.6, 0.99, size=n)
    probs = np.full((n, 3), 0.0)
    probs[:] = ((1 - confidence) / 2)[:, None]
    probs[np.arange(n), llm_label] = confidence
    return RouterItems(
        probs=probs,
        llm_label=llm_label,
        student_prob=rng.uniform(0.5, 1.0, size=n),
        knn_agreement=rng.uniform(0.5, 1.0, size=n),
        text_length=rng.integers(20, 200, size=n),
        neighbours=neighbours,
    )


def test_it_falls_back_to_the_uncertainty_prior_without_enough_answers_and_says_so():
    items = make_items()
    batch = route_next_batch(
        items, reviewed=np.array([0, 1]), llm_was_wrong=np.array([True, False]), batch_size=5
    )
    assert batch.mode == "cold_start"
    assert all(reason.startswith("cold start: uncertainty ranking") for reason in batch.reasons)
    prior = prior_error_score(items)
    prior[[0, 1]] = -1
    assert batch.indices.tolist() == np.argsort(-prior, kind="stable")[:5].tolist()


def test_it_stays_in_cold_start_when_every_answer_agrees_with_the_llm():
    items = make_items()
    reviewed = np.arange(40)
    mode = predict_error(items, reviewed=reviewed, llm_was_wrong=np.zeros(40, dtype=bool)).mode
    assert mode == "cold_start"


def test_the_prior_ranks_the_least_confident_most_contradicted_item_first():
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.8, 0.2]])
    items = RouterItems(
        probs=probs,
        llm_label=np.array([0, 0, 0]),
        student_prob=np.array([0.9, 0.2, 0.6]),
        knn_agreement=np.array([1.0, 0.1, 0.5]),
        text_length=np.array([10, 10, 10]),
    )
    assert prior_error_score(items).tolist() == [0.0, 1.0, 0.5]


def test_it_learns_which_llm_label_is_usually_wrong():
    items = make_items(n=150)
    llm_was_wrong_everywhere = items.llm_label == 2  # the LLM gets label 2 wrong, the others right
    reviewed = np.arange(45)
    batch = route_next_batch(
        items, reviewed=reviewed, llm_was_wrong=llm_was_wrong_everywhere[reviewed], batch_size=20
    )
    assert batch.mode == "learned"
    assert set(items.llm_label[batch.indices].tolist()) == {2}
    assert batch.error_probability.min() > 0.5
    assert batch.reasons[0].startswith(f"predicted error {batch.error_probability[0]:.2f}")


def test_it_never_routes_reviewed_or_excluded_items_and_respects_the_batch_size():
    items = make_items(n=30)
    batch = route_next_batch(
        items,
        reviewed=np.arange(10),
        llm_was_wrong=np.zeros(10, dtype=bool),
        batch_size=50,
        exclude=np.array([10, 11]),
    )
    assert sorted(batch.indices.tolist()) == list(range(12, 30))
    assert (
        route_next_batch(items, reviewed=np.arange(0), llm_was_wrong=np.zeros(0), batch_size=0).indices.size
        == 0
    )


def test_reasons_name_student_disagreement_and_entropy():
    items = RouterItems(
        probs=np.array([[0.5, 0.5], [0.99, 0.01]]),
        llm_label=np.array([0, 0]),
        student_prob=np.array([0.1, 0.9]),
        knn_agreement=np.array([0.2, 1.0]),
        text_length=np.array([5, 5]),
    )
    batch = route_next_batch(
        items, reviewed=np.array([], dtype=int), llm_was_wrong=np.array([], dtype=bool), batch_size=2
    )
    assert batch.reasons[0] == (
        "cold start: uncertainty ranking; student disagrees with LLM; neighbours labelled differently; entropy 0.69"
    )
    assert batch.reasons[1] == "cold start: uncertainty ranking; entropy 0.06"


def test_neighbour_error_rate_smooths_the_share_of_wrong_reviewed_neighbours():
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    items = make_items(n=4, neighbours=neighbours)
    rates = neighbour_error_rate(items, np.array([0, 1]), np.array([True, False]), prior=0.25, strength=2.0)
    # item 2: neighbours 0 (wrong) and 1 (right) → (1 + 0.5) / (2 + 2); item 0: neighbour 1 right, 2 unknown
    assert rates.tolist() == pytest.approx([0.5 / 3, 1.5 / 3, 1.5 / 4, 1.5 / 4])


def test_one_hot_conditions_names_each_key_value_pair():
    matrix, names = one_hot_conditions([{"topic": "sport", "length": "short"}, {"topic": "news"}])
    assert names == ["length=short", "topic=news", "topic=sport"]
    assert matrix.tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]


def test_rank_normalise_gives_ties_the_same_rank():
    assert _rank_normalise(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == pytest.approx(
        [5 / 6, 0.0, 5 / 6, 1 / 3]
    )


def test_it_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="student_prob"):
        RouterItems(
            probs=np.ones((3, 2)) / 2,
            llm_label=np.zeros(3, dtype=int),
            student_prob=np.ones(2),
            knn_agreement=np.ones(3),
            text_length=np.ones(3),
        )


def test_a_student_on_the_reviewers_labels_finds_a_systematic_llm_mistake():
    # two clusters; the LLM calls everything "0", but the right cluster is really "1"
    rng = np.random.default_rng(4)
    n = 80
    embeddings = np.vstack(
        [rng.normal((-3, 0), 0.3, size=(n // 2, 2)), rng.normal((3, 0), 0.3, size=(n // 2, 2))]
    )
    gold = np.repeat([0, 1], n // 2)
    items = RouterItems(
        probs=np.tile([0.9, 0.1], (n, 1)),
        llm_label=np.zeros(n, dtype=int),
        student_prob=np.full(n, 0.9),  # a student on the LLM labels learns the mistake too
        knn_agreement=np.ones(n),
        text_length=np.full(n, 50),
        embeddings=embeddings,
    )
    reviewed = np.r_[0:12, 40:52]
    batch = route_next_batch(
        items,
        reviewed=reviewed,
        llm_was_wrong=gold[reviewed] != 0,
        reviewed_labels=gold[reviewed],
        batch_size=10,
    )
    assert batch.mode == "learned"
    assert set(gold[batch.indices].tolist()) == {1}
    assert "model trained on reviewers' labels disagrees" in batch.reasons[0]


def test_human_student_probability_is_out_of_fold_and_ignores_labels_outside_the_codebook():
    rng = np.random.default_rng(5)
    n = 40
    embeddings = np.vstack([rng.normal((-3, 0), 0.3, size=(20, 2)), rng.normal((3, 0), 0.3, size=(20, 2))])
    gold = np.repeat([0, 1], 20)
    items = make_items(n=n)
    items = RouterItems(
        probs=items.probs[:, :2] / items.probs[:, :2].sum(axis=1, keepdims=True),
        llm_label=gold.copy(),
        student_prob=items.student_prob,
        knn_agreement=items.knn_agreement,
        text_length=items.text_length,
        embeddings=embeddings,
    )
    reviewed = np.arange(0, 40, 2)
    labels = gold[reviewed].copy()
    labels[0] = -1  # the reviewer wrote a label that is not in the codebook
    probability = human_student_probability(items, reviewed=reviewed, reviewed_labels=labels)
    assert probability[0] == 0.5
    assert probability[1:].min() > 0.5  # the LLM is right everywhere here
    assert human_student_probability(make_items(n=n), reviewed=reviewed, reviewed_labels=labels) is None


def test_large_codebooks_get_no_per_label_indicator_features():
    from annotation.routing.router import MAX_LABELS_ONE_HOT, feature_matrix

    small = make_items(n=6)
    _, small_names = feature_matrix(small)
    assert [name for name in small_names if name.startswith("llm_label=")] == [
        "llm_label=0",
        "llm_label=1",
        "llm_label=2",
    ]
    labels = MAX_LABELS_ONE_HOT + 1
    large = RouterItems(
        probs=np.full((4, labels), 1 / labels),
        llm_label=np.arange(4),
        student_prob=np.ones(4),
        knn_agreement=np.ones(4),
        text_length=np.ones(4),
    )
    _, large_names = feature_matrix(large)
    assert not [name for name in large_names if name.startswith("llm_label=")]


def test_cross_fitted_error_gives_each_answered_item_a_value_from_a_model_that_never_saw_its_answer():
    """Flipping one answered item's answer changes every other fold's model, never the value of that item."""
    items = make_items(n=200)
    reviewed = np.arange(0, 200, 2)  # 100 answers
    wrong = (items.llm_label[reviewed] == 1) ^ (np.arange(100) % 7 == 0)  # label 1 is usually wrong
    base = router_module.cross_fitted_error(items, reviewed=reviewed, llm_was_wrong=wrong, seed=3)
    assert base is not None and base.shape == (200,) and ((0 < base) & (base < 1)).all()
    assert base[1::2][items.llm_label[1::2] == 1].mean() > base[1::2][items.llm_label[1::2] != 1].mean() + 0.3
    for flipped in (0, 37, 99):
        changed = wrong.copy()
        changed[flipped] = ~changed[flipped]
        after = router_module.cross_fitted_error(items, reviewed=reviewed, llm_was_wrong=changed, seed=3)
        assert after[reviewed[flipped]] == base[reviewed[flipped]]  # its own value: out of fold
        assert not np.allclose(after[1::2], base[1::2])  # the unanswered items' mean model did move


def test_cross_fitted_error_is_none_until_every_fold_can_learn():
    items = make_items(n=200)
    reviewed = np.arange(12)
    assert router_module.cross_fitted_error(items, reviewed=reviewed, llm_was_wrong=reviewed % 2 == 0) is None
    reviewed = np.arange(100)
    all_right = np.zeros(100, dtype=bool)
    assert router_module.cross_fitted_error(items, reviewed=reviewed, llm_was_wrong=all_right) is None
