"""Selection strategies (annotation.selection) on small hand-checkable cases."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from annotation.routing.selection import (
    VoteGraph,
    coannotating_allocate,
    entropy,
    entropy_select,
    kmeans_select,
    least_confidence,
    least_confidence_select,
    margin_select,
    margin_uncertainty,
    random_select,
    rank_by_uncertainty,
    votek_select,
    votek_two_stage_select,
)

PROBS = np.array(
    [
        [1.0, 0.0, 0.0],  # certain
        [0.5, 0.5, 0.0],  # two-way tie
        [1 / 3, 1 / 3, 1 / 3],  # uniform
        [0.6, 0.3, 0.1],
        [0.7, 0.15, 0.15],
    ]
)


def test_least_confidence_is_one_minus_the_top_probability():
    assert least_confidence(PROBS) == pytest.approx([0.0, 0.5, 2 / 3, 0.4, 0.3])


def test_margin_is_minus_the_gap_between_the_top_two():
    assert margin_uncertainty(PROBS) == pytest.approx([-1.0, 0.0, 0.0, -0.3, -0.55])


def test_entropy_treats_zero_log_zero_as_zero():
    expected_row_3 = -(0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1))
    expected_row_4 = -(0.7 * np.log(0.7) + 2 * 0.15 * np.log(0.15))
    assert entropy(PROBS) == pytest.approx([0.0, np.log(2), np.log(3), expected_row_3, expected_row_4])
    assert entropy(PROBS)[0] == 0.0


def test_it_renormalises_rows_that_do_not_sum_to_one():
    assert least_confidence([[2.0, 2.0], [0.0, 0.0]]) == pytest.approx([0.5, 0.5])


def test_rank_by_uncertainty_puts_the_most_uncertain_first_and_keeps_index_order_on_ties():
    assert rank_by_uncertainty(PROBS, "least_confidence").tolist() == [2, 1, 3, 4, 0]
    # rows 1 and 2 both have margin 0: the lower index comes first
    assert rank_by_uncertainty(PROBS, "margin").tolist() == [1, 2, 3, 4, 0]
    # entropies: 0, 0.693, 1.099, 0.898, 0.819
    assert rank_by_uncertainty(PROBS, "entropy").tolist() == [2, 3, 4, 1, 0]


def test_it_rejects_an_unknown_uncertainty_method():
    with pytest.raises(ValueError, match="unknown uncertainty method"):
        rank_by_uncertainty(PROBS, "vibes")


def test_top_b_selectors_cut_the_ranking_at_the_budget():
    assert least_confidence_select(PROBS, 2).tolist() == [2, 1]
    assert margin_select(PROBS, 3).tolist() == [1, 2, 3]
    assert entropy_select(PROBS, 1).tolist() == [2]
    assert entropy_select(PROBS, 0).tolist() == []


def test_random_select_is_distinct_and_reproducible_with_a_seed():
    first = random_select(50, 10, seed=7)
    assert len(set(first.tolist())) == 10
    assert first.tolist() == random_select(50, 10, seed=7).tolist()
    assert first.tolist() != random_select(50, 10, seed=8).tolist()
    assert sorted(random_select(3, 10, seed=0).tolist()) == [0, 1, 2]


def test_coannotating_keeps_the_most_certain_share_for_the_llm():
    llm, humans = coannotating_allocate(PROBS, 0.4)
    assert llm.tolist() == [0, 1]  # entropies 0 and log 2 are the two lowest
    assert humans.tolist() == [2, 3, 4]  # most uncertain first
    with pytest.raises(ValueError):
        coannotating_allocate(PROBS, 1.5)


def test_kmeans_picks_the_item_nearest_each_centroid():
    # three tight groups; the middle point of each group is nearest its centroid
    groups = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)]
    points = []
    for gx, gy in groups:
        points += [(gx - 1, gy), (gx, gy), (gx + 1.2, gy)]
    picked = kmeans_select(np.array(points), 3, seed=0)
    assert sorted(picked.tolist()) == [1, 4, 7]


def test_kmeans_with_a_budget_of_n_returns_everything():
    assert kmeans_select(np.eye(4), 4).tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------- vote-k against an O(n²) reference


def reference_votek(embeddings: np.ndarray, budget: int, k: int, rho: int = 10) -> list[int]:
    """Straightforward vote-k as published: full similarity matrix, full rescan every step, exact arithmetic.
    Ties: higher similarity then lower index for neighbours; lower index for picks."""
    x = embeddings - embeddings.mean(axis=0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    n = len(x)
    votes_for = {}
    for v in range(n):
        others = [u for u in range(n) if u != v]
        others.sort(key=lambda u: (-sims[v, u], u))
        votes_for[v] = others[:k]
    voters = {u: [v for v in range(n) if u in votes_for[v]] for u in range(n)}
    selected: list[int] = []
    coverage = dict.fromkeys(range(n), 0)
    while len(selected) < budget:
        best, best_score = None, None
        for u in range(n):
            if u in selected or not [v for v in voters[u] if v not in selected]:
                continue  # as published: only items with an unselected voter get a score
            score = sum(Fraction(1, rho ** coverage[v]) for v in voters[u] if v not in selected)
            if best_score is None or score > best_score:
                best, best_score = u, score
        if best is None:
            break
        selected.append(best)
        for v in voters[best]:
            coverage[v] += 1
    return selected


def test_votek_matches_the_quadratic_reference_selection_order():
    embeddings = np.random.default_rng(3).normal(size=(40, 6))
    expected = reference_votek(embeddings, budget=12, k=5)
    assert votek_select(embeddings, 12, k=5).tolist() == expected


def test_votek_matches_the_reference_on_clustered_data_with_many_ties():
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(4, 5)) * 5
    embeddings = np.concatenate([c + rng.normal(scale=0.3, size=(8, 5)) for c in centres])
    expected = reference_votek(embeddings, budget=10, k=4)
    assert votek_select(embeddings, 10, k=4).tolist() == expected


def test_votek_never_picks_an_item_nobody_votes_for():
    # 1-NN graph: 0 → 1, 1 → 0, 2 → 1, 3 → 2. Nobody votes for 3.
    graph = VoteGraph(np.array([[1], [0], [1], [2]]))
    assert graph.vote_counts().tolist() == [1, 2, 1, 0]
    # pick 1 (2 votes); 0's only voter is now selected, so 0 drops out; 2 keeps voter 3 → pick 2; then nothing
    picked = votek_select(np.zeros((4, 2)), 4, graph=graph)
    assert picked.tolist() == [1, 2]


def test_votek_hand_case_discounts_covered_voters():
    # 0 → {1, 2}, 1 → {0, 2}, 2 → {1, 0}, 3 → {1, 2}, 4 → {5, 2}, 5 → {2, 4}
    graph = VoteGraph(np.array([[1, 2], [0, 2], [1, 0], [1, 2], [5, 2], [2, 4]]))
    # in-degrees 0:2, 1:3, 2:5, 3:0, 4:1, 5:1 → pick 2; its voters 0, 1, 3, 4, 5 get cov 1; 2 stops voting.
    # scores: 0 ← 1 (0.1); 1 ← 0, 3 (0.2); 4 ← 5 (0.1); 5 ← 4 (0.1) → pick 1; voters 0, 3 get cov 2.
    # 0 has no unselected voter left; 4 and 5 tie at 0.1 → lower index 4.
    picked = votek_select(np.zeros((6, 2)), 3, graph=graph, rho=10)
    assert picked.tolist() == [2, 1, 4]


def test_two_stage_votek_takes_one_item_per_confidence_bucket():
    neighbours = np.array([[1, 2], [0, 2], [1, 0], [1, 2], [5, 2], [4, 1], [4, 5], [5, 4], [6, 4], [7, 6]])
    graph = VoteGraph(neighbours)
    confidence = np.array([0.9, 0.8, 0.1, 0.95, 0.2, 0.3, 0.5, 0.4, 0.6, 0.7])
    # budget 3 → stage one picks 0 items (3 // 10), stage two: pool of 10 by confidence ascending
    # [2, 4, 5, 7, 6, 8, 9, 1, 0, 3]; least-confident 90% = first 9, cut into 3 buckets of 3:
    # [2, 4, 5], [7, 6, 8], [9, 1, 0]. In-degrees: 2:4, 4:4, 5:3, 6:2, 7:1, 1:4, 0:2
    # bucket 1: 2 and 4 tie → 2. Voters of 2: 0,1,3,4 → cov 1; 2 stops voting for 1 and 0.
    # bucket 2: 7 ← voter 9 (1.0); 6 ← voters 8, 9 (2.0); 8 ← none → 6
    # voters of 6 (8, 9) → cov 1. bucket 3: 9 ← nobody; 1 ← 0 (0.1), 3 (0.1), 5 (1) = 1.2; 0 ← 1 (0.1) → 1
    picked = votek_two_stage_select(np.zeros((10, 2)), confidence, 3, graph=graph)
    assert picked.tolist() == [2, 6, 1]


def test_two_stage_votek_runs_the_graph_step_for_the_first_tenth():
    embeddings = np.random.default_rng(5).normal(size=(60, 4))
    confidence = np.random.default_rng(6).random(60)
    picked = votek_two_stage_select(embeddings, confidence, 20, k=6)
    one_stage = votek_select(embeddings, 2, k=6)
    assert picked.tolist()[:2] == one_stage.tolist()
    assert len(set(picked.tolist())) == 20


def test_vote_graph_lists_each_items_voters_in_csr_form():
    graph = VoteGraph(np.array([[1, 2], [2, 0], [0, 1]]))
    assert graph.voters_of(0).tolist() == [1, 2]
    assert graph.voters_of(1).tolist() == [0, 2]
    assert graph.voters_of(2).tolist() == [0, 1]


def test_kmeans_uses_mini_batches_for_large_pools_and_still_picks_distinct_members(monkeypatch):
    import annotation.routing.selection as selection

    monkeypatch.setattr(selection, "MINIBATCH_KMEANS_ABOVE", 10)
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    points = np.concatenate([c + rng.normal(scale=0.5, size=(20, 2)) for c in centres])
    picked = selection.kmeans_select(points, 3, seed=0)
    assert sorted(int(p) // 20 for p in picked) == [0, 1, 2]  # one member of each blob


def test_votek_on_a_single_item_selects_nothing_because_nobody_can_vote():
    assert votek_select(np.ones((1, 3)), 5).tolist() == []
