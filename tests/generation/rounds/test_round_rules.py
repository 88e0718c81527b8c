"""The pure cores of automatic rounds: the reweighting toward human corrections, student errors and thin
coverage (generation.conditions), the stop rule and the student's per-value errors (generation.round_rules)."""

from __future__ import annotations

import numpy as np
import pytest

from generation.conditions import reweight_toward_weakness
from generation.round_rules import (
    RoundOutcome,
    merge_value_counts,
    round_stop_reason,
    student_errors_by_value,
    student_trainable,
)

TONE = [("tone", ["plain", "sarcastic"])]


def test_student_errors_move_weight_even_when_humans_corrected_both_values_alike():
    stats = {
        "tone": {
            "plain": {"generated": 4, "reviewed": 4, "corrected": 1, "student_scored": 4, "student_wrong": 0},
            "sarcastic": {
                "generated": 4,
                "reviewed": 4,
                "corrected": 1,
                "student_scored": 4,
                "student_wrong": 2,
            },
        }
    }
    # human (2/6 each) cancels; student: plain 1/6, sarcastic 3/6 → mean 1/3 → 0.5 and 1.5; thin 1 each
    assert reweight_toward_weakness(TONE, None, stats) == {"tone": {"plain": 0.5, "sarcastic": 1.5}}


def test_human_corrections_and_student_errors_multiply():
    stats = {
        "tone": {
            "plain": {"generated": 2, "reviewed": 2, "corrected": 0, "student_scored": 2, "student_wrong": 0},
            "sarcastic": {
                "generated": 2,
                "reviewed": 2,
                "corrected": 2,
                "student_scored": 2,
                "student_wrong": 2,
            },
        }
    }
    # human 1/4 vs 3/4 → 0.5, 1.5; student the same → weak 0.25, 2.25 → scaled to average 1: 0.2, 1.8
    assert reweight_toward_weakness(TONE, None, stats) == {"tone": {"plain": 0.2, "sarcastic": 1.8}}


def test_thin_coverage_raises_a_value_with_few_samples():
    stats = {"tone": {"plain": {"generated": 5}, "sarcastic": {"generated": 1}}}
    # thin: (3 + 1) / 6 and 4 / 2 → 2/3 and 2 → average 1: 0.5, 1.5
    assert reweight_toward_weakness(TONE, None, stats) == {"tone": {"plain": 0.5, "sarcastic": 1.5}}


def test_without_student_figures_the_weights_are_those_of_human_corrections_alone():
    stats = {
        "tone": {
            "plain": {"generated": 2, "reviewed": 2, "corrected": 0},
            "sarcastic": {"generated": 2, "reviewed": 2, "corrected": 2},
        }
    }
    assert reweight_toward_weakness(TONE, {"tone": {"plain": 1.0, "sarcastic": 1.0}}, stats) == {
        "tone": {"plain": 0.5, "sarcastic": 1.5}
    }


def test_the_old_weights_carry_over_and_strength_zero_keeps_them():
    stats = {"tone": {"plain": {"student_scored": 2, "student_wrong": 2}}}
    old = {"tone": {"plain": 0.5, "sarcastic": 1.5}}
    assert reweight_toward_weakness(TONE, old, stats, strength=0.0) == old


def test_student_errors_are_counted_per_value_of_every_dimension():
    conditions = [
        {"tone": "plain", "topic": "plot"},
        {"tone": "sarcastic", "topic": "plot"},
        {"tone": "sarcastic"},
    ]
    counts = student_errors_by_value(conditions, np.array([0, 1, 1]), np.array([0, 0, 1]))
    assert counts == {
        "tone": {
            "plain": {"student_scored": 1, "student_wrong": 0},
            "sarcastic": {"student_scored": 2, "student_wrong": 1},
        },
        "topic": {"plot": {"student_scored": 2, "student_wrong": 1}},
    }


def test_merge_adds_counts_of_the_same_name_and_keeps_the_others():
    merged = merge_value_counts(
        {"tone": {"plain": {"generated": 2, "corrected": 1}}},
        {"tone": {"plain": {"student_wrong": 1, "corrected": 1}, "sarcastic": {"student_scored": 3}}},
    )
    assert merged == {
        "tone": {
            "plain": {"generated": 2, "corrected": 2, "student_wrong": 1},
            "sarcastic": {"student_scored": 3},
        }
    }


@pytest.mark.parametrize(
    ("labels", "trainable"),
    [([0, 0, 1, 1], True), ([0, 0, 1], False), ([0, 0, 0], False), ([], False), ([0, 2, 2, 0], True)],
)
def test_the_student_needs_two_classes_with_two_verified_items_each(labels, trainable):
    assert student_trainable(np.array(labels, dtype=np.int64)) is trainable


def outcome(**values) -> RoundOutcome:
    base = dict(round_number=1, rounds=3, reviewed=10, corrected=3, new_correct=5, target_corrected_share=0.0)
    base.update(values)
    return RoundOutcome(**base)


def test_the_loop_goes_on_while_no_stop_rule_applies():
    assert round_stop_reason(outcome()) == ""


def test_it_stops_at_the_configured_round_count_first():
    assert round_stop_reason(outcome(round_number=3, new_correct=0)) == "Reached the configured 3 rounds."


def test_it_stops_when_a_round_adds_no_new_correct_sample():
    assert round_stop_reason(outcome(new_correct=0)) == "Round 1 added no new correct samples."


def test_it_stops_once_the_corrected_share_is_below_the_target_and_not_at_it():
    assert round_stop_reason(outcome(target_corrected_share=0.3)) == ""  # 30 % is not below 30 %
    assert round_stop_reason(outcome(corrected=2, target_corrected_share=0.3)) == (
        "Target met: humans corrected 20% of round 1's reviewed samples, below the target of 30%."
    )


def test_an_unreviewed_round_never_meets_the_target():
    assert round_stop_reason(outcome(reviewed=0, corrected=0, target_corrected_share=0.5)) == ""
