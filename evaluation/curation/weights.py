"""The project's choice of sample weights for snapshots (CurationSettings.sample_weights) and the weights
themselves.

- rule (default): a sample's `final_weight` as the final labels wrote it — the share of human answers that
  agree with the final label for human labels, the LLM's confidence for LLM labels.
- learned: held-out-loss weights (evaluation.benchmark.downstream.held_out_loss_weights; the docstring there
  says why this one-step form of SunGen's bilevel problem): a logistic regression on sentence embeddings,
  fitted on every human-verified item of the project, scores each LLM-labelled item; its weight is
  p(its label | text), rescaled to mean 1 over the LLM-labelled items of the snapshot. Human-verified items
  weigh 1: they are the reference the others are measured against. The downstream benchmark trains with
  the same function, so what it reports for "weighted (learned)" is what a snapshot with this option holds.

Learned weights need human-verified items of two labels or more; without them the snapshot keeps the rule's
weights and its stats say so (`weights.method` is what was used, `weights.requested` what was asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.benchmark.downstream import held_out_loss_weights
from evaluation.models import CurationSettings, SampleWeighting
from synthstudio.embeddings import embed_texts
from synthstudio.models import HUMAN_VERIFIED_SOURCES, Project

METHOD_TEXT = {
    SampleWeighting.RULE: "the final-label rule: the share of human answers agreeing with the final label for "
    "human labels, the LLM's confidence for LLM labels",
    SampleWeighting.LEARNED: "learned by held-out loss: p(label | text) under a logistic regression on sentence "
    "embeddings fitted on the project's human-verified items, rescaled to mean 1 over the LLM-labelled rows; "
    "human-verified rows weigh 1",
}


def sample_weights_get(*, project: Project) -> str:
    return (
        CurationSettings.objects.filter(project=project).values_list("sample_weights", flat=True).first()
        or SampleWeighting.RULE
    )


def sample_weights_save(*, project: Project, method: str) -> None:
    if method not in SampleWeighting.values:
        raise ValueError(f"Unknown sample weighting {method!r}.")
    CurationSettings.objects.update_or_create(project=project, defaults={"sample_weights": method})


@dataclass(frozen=True)
class SnapshotWeights:
    weights: list[float]  # one per kept row, in order
    stats: dict  # for Snapshot.stats["weights"]: method used, requested, description, validation items


def snapshot_weights(*, method: str, rows: Sequence[tuple], kept: Sequence[tuple]) -> SnapshotWeights:
    """The weight of each kept row under `method`. Rows are snapshots.SAMPLE_COLUMNS tuples
    (id, text, label, source, weight, …); `rows` is every sample of the project (its human-verified ones are
    the validation set, kept by the filters or not), `kept` those going into the snapshot."""
    rule = [float(row[4]) for row in kept]
    human = [(row[1], row[2]) for row in rows if row[3] in HUMAN_VERIFIED_SOURCES and row[2]]
    stats = {"requested": method, "method": SampleWeighting.RULE, "validation_items": len(human)}
    if method != SampleWeighting.LEARNED:
        return SnapshotWeights(rule, {**stats, "description": METHOD_TEXT[SampleWeighting.RULE]})
    if len({label for _, label in human}) < 2:
        note = "learned weights need human-verified items of two labels or more; the rule's weights were used"
        return SnapshotWeights(
            rule, {**stats, "description": METHOD_TEXT[SampleWeighting.RULE], "note": note}
        )
    others = [i for i, row in enumerate(kept) if row[3] not in HUMAN_VERIFIED_SOURCES]
    weights = np.ones(len(kept))
    if others:
        weights[others] = held_out_loss_weights(
            train_vectors=embed_texts([kept[i][1] for i in others]),
            train_labels=[kept[i][2] for i in others],
            validation_vectors=embed_texts([text for text, _ in human]),
            validation_labels=[label for _, label in human],
        )
    return SnapshotWeights(
        [round(float(w), 6) for w in weights],
        {**stats, "method": SampleWeighting.LEARNED, "description": METHOD_TEXT[SampleWeighting.LEARNED]},
    )


def weights_sentence(stats: dict | None) -> str:
    """How a snapshot's `weight` column was made, for the dataset card and the snapshot page."""
    stats = stats or {}
    if not stats:  # snapshots made before the option: the rule
        return f"`weight` is {METHOD_TEXT[SampleWeighting.RULE]}."
    sentence = f"`weight` is {stats.get('description') or METHOD_TEXT[SampleWeighting.RULE]}"
    if stats.get("method") == SampleWeighting.LEARNED:
        sentence += f" ({stats.get('validation_items', 0)} human-verified items)"
    if stats.get("note"):
        sentence += f" — {stats['note']}"
    return sentence + "."
