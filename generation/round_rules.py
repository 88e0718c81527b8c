"""Automatic dataset-level rounds (no Django): when a loop of rounds stops, and the held-out student's errors
per condition value.

Survey §3.1.2, dataset level (S3, Wang et al. 2023): generate, have the data checked, then generate the next
round toward where the data is weakest — here judged by human corrections and by the mistakes of a small
student trained on the human-verified items. The loop itself (states, tasks) is generation.services.rounds_loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ValueCounts = dict[str, dict[str, dict[str, int]]]  # {dimension: {value: {count name: n}}}


@dataclass(frozen=True)
class RoundOutcome:
    """What one finished round measured, as the stop rule reads it."""

    round_number: int
    rounds: int  # the config's N
    reviewed: int  # round samples humans reviewed
    corrected: int  # of those, corrected
    new_correct: int  # round samples (not seen in an earlier run) whose label held up
    target_corrected_share: float  # 0: no target

    @property
    def corrected_share(self) -> float | None:
        return self.corrected / self.reviewed if self.reviewed else None


def round_stop_reason(outcome: RoundOutcome) -> str:
    """Why the loop stops after this round, or "" to go on. Checked in this order: the round count, a round
    that added no new correct sample (more rounds would only spend calls), the corrected-share target (only
    once humans reviewed something: an unreviewed round says nothing about quality)."""
    if outcome.round_number >= outcome.rounds:
        return f"Reached the configured {outcome.rounds} round{'s' if outcome.rounds != 1 else ''}."
    if outcome.new_correct == 0:
        return f"Round {outcome.round_number} added no new correct samples."
    share = outcome.corrected_share
    if outcome.target_corrected_share > 0 and share is not None and share < outcome.target_corrected_share:
        return (
            f"Target met: humans corrected {share:.0%} of round {outcome.round_number}'s reviewed samples, "
            f"below the target of {outcome.target_corrected_share:.0%}."
        )
    return ""


def student_errors_by_value(
    conditions: Sequence[Mapping[str, str]], verified: np.ndarray, predicted: np.ndarray
) -> ValueCounts:
    """Per dimension and value: how many verified items the held-out student scored ("student_scored") and
    how many it got wrong ("student_wrong"). `verified` and `predicted` are class indices per item
    (`predicted` out-of-fold, so the model that scored an item never saw it)."""
    counts: ValueCounts = {}
    for item_conditions, truth, guess in zip(conditions, verified, predicted, strict=True):
        for name, value in item_conditions.items():
            entry = counts.setdefault(name, {}).setdefault(
                str(value), {"student_scored": 0, "student_wrong": 0}
            )
            entry["student_scored"] += 1
            entry["student_wrong"] += int(truth != guess)
    return counts


def merge_value_counts(*tables: Mapping[str, Mapping[str, Mapping[str, int]]]) -> ValueCounts:
    """One table with every count of every input per dimension and value (counts with the same name add up)."""
    merged: ValueCounts = {}
    for table in tables:
        for name, values in table.items():
            for value, counts in values.items():
                entry = merged.setdefault(name, {}).setdefault(value, {})
                for key, count in counts.items():
                    entry[key] = entry.get(key, 0) + count
    return merged


def student_trainable(labels: np.ndarray) -> bool:
    """Whether a held-out student can be trained: two classes or more, each with at least two verified items
    (fewer and student_probabilities falls back to in-sample scores, which are not held-out errors)."""
    counts = np.bincount(labels) if len(labels) else np.array([])
    present = counts[counts > 0]
    return len(present) >= 2 and int(present.min()) >= 2
