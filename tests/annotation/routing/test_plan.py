"""Unit tests of the pure routing planner (annotation.routing_plan) and the SVG histogram geometry."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.labelling.charts import CHART_HEIGHT, histogram
from annotation.routing.plan import plan_routing_batch

PROBS = np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3], [0.6, 0.4], [0.99, 0.01]])


def test_uncertainty_strategies_pick_only_candidates_most_uncertain_first():
    picks = plan_routing_batch(
        strategy="least_confidence", probs=PROBS, candidates=np.array([0, 2, 3, 4]), size=2
    )
    assert [p.index for p in picks] == [3, 2]
    assert [p.reason for p in picks] == ["least confidence 0.40", "least confidence 0.30"]
    assert picks[0].priority > picks[1].priority


def test_margin_reasons_show_the_gap_between_the_top_two():
    picks = plan_routing_batch(strategy="margin", probs=PROBS, candidates=np.arange(5), size=1)
    assert picks[0].index == 1 and picks[0].reason == "margin 0.00"


def test_invalid_rows_count_as_uniform_and_say_so():
    valid = np.array([True, True, True, True, False])
    picks = plan_routing_batch(
        strategy="entropy", probs=PROBS, candidates=np.array([0, 4]), size=1, valid=valid
    )
    assert picks[0].index == 4 and picks[0].reason == "entropy 0.69; no valid LLM label"


def test_student_disagreement_is_added_to_the_reason():
    disagrees = np.array([False, False, True, False, False])
    picks = plan_routing_batch(
        strategy="entropy", probs=PROBS, candidates=np.array([2]), size=1, student_disagrees=disagrees
    )
    assert picks[0].reason.endswith("; student disagrees with LLM")


def test_coannotating_sends_the_highest_entropy_share_to_humans():
    picks = plan_routing_batch(strategy="coannotating", probs=PROBS, candidates=np.arange(5), size=2)
    assert [p.index for p in picks] == [1, 3]
    assert picks[0].reason.startswith(
        "entropy of the LLM's label distribution"
    )  # the source is not known here


def test_diversity_strategies_pick_distinct_candidates_with_descending_priority():
    rng = np.random.default_rng(0)
    embeddings = np.vstack(
        [rng.normal(0, 0.05, (5, 4)) + [1, 0, 0, 0], rng.normal(0, 0.05, (5, 4)) + [0, 1, 0, 0]]
    )
    probs = np.tile([0.6, 0.4], (10, 1))
    candidates = np.arange(1, 10)
    for strategy in ("random", "kmeans", "votek", "votek_two_stage"):
        picks = plan_routing_batch(
            strategy=strategy, probs=probs, candidates=candidates, size=2, embeddings=embeddings
        )
        indices = [p.index for p in picks]
        assert len(set(indices)) == 2 and set(indices) <= set(candidates.tolist()), strategy
        assert picks[0].priority > picks[1].priority
    kmeans = plan_routing_batch(
        strategy="kmeans", probs=probs, candidates=candidates, size=2, embeddings=embeddings
    )
    assert {p.index // 5 for p in kmeans} == {0, 1}  # one from each cluster


def test_it_refuses_unknown_strategies_and_missing_embeddings():
    with pytest.raises(ValueError):
        plan_routing_batch(strategy="psychic", probs=PROBS, candidates=np.arange(5), size=1)
    with pytest.raises(ValueError):
        plan_routing_batch(strategy="votek", probs=PROBS, candidates=np.arange(5), size=1)


def test_an_empty_batch_when_nothing_is_left():
    assert (
        plan_routing_batch(strategy="entropy", probs=PROBS, candidates=np.array([], dtype=int), size=3) == []
    )


def test_histogram_bars_count_values_and_scale_to_the_tallest():
    chart = histogram("confidence", [0.05, 0.15, 0.12, 0.95, None], bins=10)
    assert [bar.count for bar in chart.bars] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert chart.total == 4
    assert chart.bars[1].height == CHART_HEIGHT and chart.bars[0].height == CHART_HEIGHT / 2
    assert chart.bars[2].height == 0
