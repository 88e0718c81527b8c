"""The pure metrics core against reference implementations (sklearn, statsmodels, krippendorff) and hand
computations."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from evaluation.dashboards import metrics

RATER_A = ["pos", "pos", "neg", "neu", "neg", "pos", "neu", "neu", "pos", "neg", "neg", "pos"]
RATER_B = ["pos", "neg", "neg", "neu", "neg", "pos", "pos", "neu", "pos", "neu", "neg", "pos"]


def test_cohen_kappa_agrees_with_sklearn():
    assert metrics.cohen_kappa(RATER_A, RATER_B) == pytest.approx(
        cohen_kappa_score(RATER_A, RATER_B), abs=1e-9
    )


def test_cohen_kappa_agrees_with_sklearn_on_random_ratings():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, 200).tolist()
    b = [x if rng.random() < 0.6 else int(rng.integers(0, 4)) for x in a]
    assert metrics.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-9)


def test_fleiss_kappa_agrees_with_statsmodels():
    rng = np.random.default_rng(7)
    items = [[int(v) for v in rng.integers(0, 3, 4)] for _ in range(30)]
    table = metrics.category_counts(items, categories=[0, 1, 2])
    assert metrics.fleiss_kappa(table) == pytest.approx(
        statsmodels_fleiss_kappa(table, method="fleiss"), abs=1e-9
    )


def test_fleiss_kappa_rejects_items_with_different_rater_counts():
    with pytest.raises(ValueError):
        metrics.fleiss_kappa(np.array([[2, 1], [1, 1]]))


def test_krippendorff_alpha_agrees_with_the_package_with_missing_values():
    # Krippendorff's own example (raters × units), nan = missing
    data = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
    units = [[None if math.isnan(v) else v for v in column] for column in zip(*data, strict=True)]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert metrics.krippendorff_alpha_nominal(units) == pytest.approx(expected, abs=1e-9)


def test_krippendorff_alpha_agrees_with_the_package_on_random_sparse_ratings():
    rng = np.random.default_rng(11)
    data = rng.integers(0, 3, (5, 40)).astype(float)
    data[rng.random(data.shape) < 0.35] = np.nan
    units = [[None if math.isnan(v) else int(v) for v in column] for column in data.T]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert metrics.krippendorff_alpha_nominal(units) == pytest.approx(expected, abs=1e-9)


def test_wilson_interval_matches_the_closed_form_for_8_of_10():
    interval = metrics.wilson_interval(8, 10)
    z = 1.96
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (interval.low, interval.high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert interval.low == pytest.approx(0.4902, abs=1e-4)
    assert interval.high == pytest.approx(0.9433, abs=1e-4)


def test_ratings_for_margin_is_the_smallest_n_reaching_the_margin():
    n = metrics.ratings_for_margin(0.5, 0.05)
    assert metrics.wilson_interval(n // 2, n).margin <= 0.05 + 1e-3
    # Wilson half-width at p = .5 is z·sqrt(1/(4n) + z²/(16n²))/(1 + z²/n): n = 381 is the first at ≤ .05
    assert n == 381


def test_confusion_matrix_and_per_label_scores_agree_with_sklearn():
    labels = ["neg", "neu", "pos"]
    matrix = metrics.confusion_matrix(RATER_A, RATER_B, labels)
    assert matrix.tolist() == [[3, 1, 0], [0, 2, 1], [1, 0, 4]]
    scores = {s.label: s for s in metrics.per_label_scores(matrix, labels)}
    assert scores["pos"].precision == pytest.approx(4 / 5)
    assert scores["pos"].recall == pytest.approx(4 / 5)
    assert metrics.macro_f1(RATER_A, RATER_B) == pytest.approx(
        f1_score(RATER_A, RATER_B, average="macro"), abs=1e-9
    )


def test_distinct_n_counts_unique_over_total_ngrams():
    tokens = [metrics.tokenize("the cat sat"), metrics.tokenize("The cat ran")]
    assert metrics.distinct_n(tokens, 1) == pytest.approx(4 / 6)
    assert metrics.distinct_n(tokens, 2) == pytest.approx(3 / 4)
    assert metrics.vocabulary_size(tokens) == 4
    assert metrics.top_ngrams(tokens, 1, 2) == [("cat", 2), ("the", 2)]


def test_self_bleu_is_one_for_identical_texts_and_zero_for_disjoint_ones():
    same = [metrics.tokenize("a b c d e")] * 3
    assert metrics.self_bleu(same) == pytest.approx(1.0)
    disjoint = [metrics.tokenize("a b c d"), metrics.tokenize("e f g h"), metrics.tokenize("i j k l")]
    assert metrics.self_bleu(disjoint) == 0.0


def test_self_bleu_of_a_partial_overlap_matches_a_hand_computation():
    texts = [["a", "b", "c"], ["a", "b", "d"]]
    # each text: p1 = 2/3, p2 smoothed = (1+1)/(2+1), p3 = (0+1)/(1+1), p4 = (0+1)/(0+1); BP = 1
    expected = math.exp((math.log(2 / 3) + math.log(2 / 3) + math.log(1 / 2) + math.log(1)) / 4)
    assert metrics.self_bleu(texts) == pytest.approx(expected, abs=1e-12)


def test_mean_pairwise_cosine_distance_equals_the_brute_force_mean():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(25, 8))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    brute = 1 - (sims.sum() - 25) / (25 * 24)
    assert metrics.mean_pairwise_cosine_distance(x) == pytest.approx(brute, abs=1e-9)


def test_vendi_score_is_n_for_orthogonal_items_and_one_for_identical_items():
    assert metrics.vendi_score(np.eye(5)) == pytest.approx(5.0)
    assert metrics.vendi_score(np.ones((6, 3))) == pytest.approx(1.0)


def test_vendi_score_matches_the_definition_on_random_vectors():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 20))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    eig = np.linalg.eigvalsh(unit @ unit.T / 10)
    eig = eig[eig > 1e-12]
    assert metrics.vendi_score(x) == pytest.approx(math.exp(-(eig * np.log(eig)).sum()), abs=1e-9)


def test_near_duplicate_rate_counts_items_with_a_near_twin():
    x = np.array([[1.0, 0.0], [0.999, 0.01], [0.0, 1.0], [-1.0, 0.0]])
    assert metrics.near_duplicate_rate(x, threshold=0.95) == pytest.approx(0.5)


def test_elo_follows_a_hand_computed_sequence():
    matches = [("a", "b", 1.0), ("b", "a", 1.0), ("a", "c", 0.5)]
    ratings = metrics.elo_ratings(matches)
    # 1: equal ratings, E = .5 → a 1002, b 998
    # 2: b (998) beats a (1002): E_b = 1/(1+10^(4/400)); b += 4(1 − E_b), a −= same
    e_b = 1 / (1 + 10 ** (4 / 400))
    a, b = 1002 - 4 * (1 - e_b), 998 + 4 * (1 - e_b)
    # 3: a ties new player c (1000): E_a = 1/(1+10^((1000 − a)/400)); a += 4(.5 − E_a)
    e_a = 1 / (1 + 10 ** ((1000 - a) / 400))
    assert ratings["a"] == pytest.approx(a + 4 * (0.5 - e_a), abs=1e-9)
    assert ratings["b"] == pytest.approx(b, abs=1e-9)
    assert ratings["c"] == pytest.approx(1000 - 4 * (0.5 - e_a), abs=1e-9)
    assert ratings["b"] == pytest.approx(1000.0230252, abs=1e-6)


def test_bradley_terry_recovers_strengths_whose_score_equations_hold_exactly():
    # strengths 4 : 2 : 1 — each pair's win counts equal n·p_i/(p_i+p_j), so the MLE is exactly (4, 2, 1)
    matches = [("x", "y", 1.0)] * 2 + [("y", "x", 1.0)] + [("x", "z", 1.0)] * 4 + [("z", "x", 1.0)]
    matches += [("y", "z", 1.0)] * 2 + [("z", "y", 1.0)]
    strengths = metrics.bradley_terry(matches)
    assert strengths["x"] / strengths["z"] == pytest.approx(4.0, abs=1e-9)
    assert strengths["y"] / strengths["z"] == pytest.approx(2.0, abs=1e-9)
    elo_scale = metrics.bt_to_elo_scale(strengths)
    assert elo_scale["x"] - elo_scale["z"] == pytest.approx(400 * math.log10(4), abs=1e-7)


def test_bradley_terry_counts_a_tie_as_half_a_win():
    strengths = metrics.bradley_terry([("p", "q", 1.0), ("p", "q", 0.5), ("q", "p", 1.0), ("p", "q", 1.0)])
    # p: 2.5 wins of 4 → p/q = 2.5/1.5
    assert strengths["p"] / strengths["q"] == pytest.approx(2.5 / 1.5, abs=1e-9)


def test_leaderboards_put_the_stronger_player_first_with_an_interval_around_it():
    matches = [("strong", "weak", 1.0)] * 30 + [("weak", "strong", 1.0)] * 10
    for board in (
        metrics.elo_leaderboard(matches, rounds=50),
        metrics.bradley_terry_leaderboard(matches, rounds=50),
    ):
        assert [row.player for row in board] == ["strong", "weak"]
        assert board[0].low <= board[0].rating <= board[0].high
        assert board[0].games == 40


def test_a_sampled_near_duplicate_rate_checks_each_sampled_item_against_all_items():
    x = np.array([[1.0, 0.0], [0.999, 0.01], [0.0, 1.0], [-1.0, 0.0]])
    # items 0 and 1 are twins; each sampled item is compared with all four items
    picked = np.random.default_rng(0).choice(4, size=3, replace=False)
    expected = sum(1 for i in picked if i in (0, 1)) / 3
    assert metrics.near_duplicate_rate(x, threshold=0.95, sample=3, seed=0) == pytest.approx(expected)
    twins = np.vstack([np.eye(3), np.eye(3)])
    assert metrics.near_duplicate_rate(twins, threshold=0.99, sample=2) == 1.0


def test_the_diversity_summary_reports_its_sample_sizes():
    rng = np.random.default_rng(1)
    texts = [f"word{i} word{i + 1} shared" for i in range(30)]
    summary = metrics.diversity_summary(
        texts, rng.normal(size=(30, 5)), self_bleu_sample=10, vendi_sample=12, near_duplicate_sample=7
    )
    assert (
        summary["n"],
        summary["self_bleu_sample"],
        summary["vendi_sample"],
        summary["near_duplicate_sample"],
    ) == (30, 10, 12, 7)
    assert summary["distinct_1"] == pytest.approx(metrics.distinct_n([metrics.tokenize(t) for t in texts], 1))
    assert summary["top_unigrams"][0] == ("shared", 30)
