"""Aggregating several annotators' answers into one label per item (no Django): majority vote and
Dawid–Skene.

Dawid & Skene (1979), "Maximum Likelihood Estimation of Observer Error-Rates Using the EM Algorithm": every
annotator a has a confusion matrix π_a[k, l] = P(a answers l | the true label is k) and the labels a prior
ρ_k; EM alternates the posterior of each item's true label, P(k | answers) ∝ ρ_k Π_a π_a[k, answer_a], and
re-estimating π and ρ from those posteriors. An annotator who is right 90 % of the time then outvotes two
who are right 55 %, which a majority vote cannot do.

The EM is crowd-kit's `crowdkit.aggregation.DawidSkene`. Gold items anchor it twice:
- as crowd-kit's `true_labels`, which fixes their posteriors to the known label in every E-step, so each
  annotator's confusion matrix is estimated with the gold answers counted as certain;
- and, by hand here, as the starting point: crowd-kit starts EM from majority vote, and EM only climbs to
  the nearest optimum, so when a majority is systematically wrong (two annotators who swap labels outvote
  one who is right) a few gold items cannot pull it out — the gold answers are a small share of the counts.
  When annotators answered gold items, the first confusion matrices are instead their smoothed confusion
  on those items (crowd-kit's `initial_error`, strategy "assign"; annotators without gold answers start
  from the symmetric matrix of the pooled gold accuracy), so EM starts in the basin the gold points at.
On top of crowd-kit's fit this module also adds, by hand and for the reason given:
- add-one (Dirichlet) smoothing of the confusion counts, rebuilt from crowd-kit's item posteriors —
  crowd-kit's maximum-likelihood matrices put probability 0 on any answer an annotator has not yet given,
  which would make one new answer veto a label outright;
- `dawid_skene_posterior`: the E-step for one item with the stored parameters, so an answer arriving after
  the fit is aggregated without refitting; an annotator the fit has not seen gets the symmetric confusion
  matrix of the fitted annotators' median accuracy.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import pandas as pd
from crowdkit.aggregation import DawidSkene

SMOOTHING = 1.0  # pseudo-count per confusion cell
N_ITER = 100


def majority_label(votes: Iterable[str]) -> str | None:
    """The most common label, or None when there is no vote or the top labels tie."""
    ranked = Counter(label for label in votes if label).most_common()
    if not ranked or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]


@dataclass(frozen=True)
class DawidSkeneFit:
    labels: list[str]
    prior: dict[str, float]
    # confusion[annotator][true label][answered label] = P(answered | true), smoothed
    confusion: dict[str, dict[str, dict[str, float]]]
    accuracy: dict[str, float]  # Σ_k ρ_k π_a[k, k]: chance the annotator's answer is right on a random item
    answers: dict[str, int]  # answers each annotator gave (in the fit)
    gold_answers: dict[str, int] = field(default_factory=dict)  # of which on gold items

    def as_json(self) -> dict:
        return {
            "labels": self.labels,
            "prior": self.prior,
            "confusion": self.confusion,
            "accuracy": self.accuracy,
            "answers": self.answers,
            "gold_answers": self.gold_answers,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> DawidSkeneFit | None:
        if not data or not data.get("labels"):
            return None
        return cls(
            labels=list(data["labels"]),
            prior=dict(data["prior"]),
            confusion={str(a): m for a, m in data["confusion"].items()},
            accuracy={str(a): float(v) for a, v in data["accuracy"].items()},
            answers={str(a): int(v) for a, v in data["answers"].items()},
            gold_answers={str(a): int(v) for a, v in (data.get("gold_answers") or {}).items()},
        )


def dawid_skene_fit(
    answers: Iterable[tuple[Hashable, Hashable, str]],
    *,
    gold: Mapping[Any, str] | None = None,
    labels: Iterable[str] = (),
    n_iter: int = N_ITER,
) -> DawidSkeneFit | None:
    """Fit Dawid–Skene to (item, annotator, label) answers, one per annotator and item; `gold`: {item: known
    label} anchors the fit. Annotator keys are stored as strings. None when there are no answers."""
    rows = [(item, str(annotator), label) for item, annotator, label in answers if label]
    if not rows:
        return None
    answered_labels = sorted({label for _, _, label in rows})
    label_names = sorted(set(labels) | set(answered_labels))
    data = pd.DataFrame(rows, columns=["task", "worker", "label"])
    tasks = set(data["task"])
    # a gold label nobody ever answered has no column in crowd-kit's matrices: such items cannot anchor
    answered_gold = {
        item: label for item, label in (gold or {}).items() if item in tasks and label in answered_labels
    }
    initial = _gold_confusion(rows, answered_gold, answered_labels) if answered_gold else None
    model = DawidSkene(n_iter=n_iter, initial_error_strategy="assign" if initial is not None else None)
    model.fit(
        data,
        true_labels=pd.Series(answered_gold, dtype=object) if answered_gold else None,
        initial_error=initial,
    )
    if model.probas_ is None:  # crowd-kit leaves it unset only for empty data, excluded above
        return None
    posteriors = model.probas_.reindex(columns=label_names, fill_value=0.0)
    posterior_of = posteriors.to_dict("index")
    prior_counts = {k: SMOOTHING for k in label_names}
    for task_posterior in posterior_of.values():
        for k, p in task_posterior.items():
            prior_counts[k] += p
    total = sum(prior_counts.values())
    prior = {k: v / total for k, v in prior_counts.items()}
    counts: dict[str, dict[str, dict[str, float]]] = {}
    answer_count: Counter[str] = Counter()
    gold_count: Counter[str] = Counter()
    for item, annotator, label in rows:
        matrix = counts.setdefault(annotator, {k: dict.fromkeys(label_names, SMOOTHING) for k in label_names})
        for k, p in posterior_of[item].items():
            matrix[k][label] += p
        answer_count[annotator] += 1
        gold_count[annotator] += item in answered_gold
    confusion = {
        annotator: {
            k: {given: v / sum(row.values()) for given, v in row.items()} for k, row in matrix.items()
        }
        for annotator, matrix in counts.items()
    }
    accuracy = {
        annotator: sum(prior[k] * matrix[k][k] for k in label_names)
        for annotator, matrix in confusion.items()
    }
    return DawidSkeneFit(
        label_names, prior, confusion, accuracy, dict(answer_count), {a: gold_count[a] for a in answer_count}
    )


def _gold_confusion(
    rows: list[tuple[Hashable, str, str]], gold: Mapping[Hashable, str], labels: list[str]
) -> pd.DataFrame:
    """crowd-kit's initial_error: per (worker, answered label) row, P(answered | true) in the true-label
    columns, from each annotator's answers on gold items (add-one smoothed)."""
    counts: dict[str, dict[str, dict[str, float]]] = {}
    right = total = 0
    for item, annotator, label in rows:
        matrix = counts.setdefault(annotator, {k: dict.fromkeys(labels, SMOOTHING) for k in labels})
        if item in gold:
            matrix[gold[item]][label] += 1
            right += label == gold[item]
            total += 1
    pooled = _symmetric_confusion(labels, right / total if total else 0.7)
    index, values = [], []
    for annotator, matrix in counts.items():
        has_gold = sum(sum(row.values()) for row in matrix.values()) > SMOOTHING * len(labels) ** 2
        for given in labels:
            index.append((annotator, given))
            values.append(
                [matrix[k][given] / sum(matrix[k].values()) if has_gold else pooled[k][given] for k in labels]
            )
    return pd.DataFrame(
        values, index=pd.MultiIndex.from_tuples(index, names=["worker", "label"]), columns=labels
    )


def _symmetric_confusion(labels: list[str], accuracy: float) -> dict[str, dict[str, float]]:
    off = (1 - accuracy) / max(1, len(labels) - 1)
    return {k: {given: accuracy if given == k else off for given in labels} for k in labels}


def dawid_skene_posterior(fit: DawidSkeneFit, votes: Mapping[Hashable, str]) -> dict[str, float]:
    """P(true label | these annotators' answers) under the fitted parameters ({annotator: label}); labels the
    fit does not know are added with the smallest prior."""
    labels = list(fit.labels) + sorted({v for v in votes.values() if v and v not in fit.labels})
    floor = min(fit.prior.values()) if fit.prior else 1.0 / len(labels)
    fallback = _symmetric_confusion(labels, median(fit.accuracy.values()) if fit.accuracy else 0.7)
    log_posterior = {k: math.log(fit.prior.get(k, floor)) for k in labels}
    for annotator, answer in votes.items():
        if not answer:
            continue
        matrix = fit.confusion.get(str(annotator))
        for k in labels:
            p = matrix.get(k, {}).get(answer) if matrix and answer in fit.labels and k in fit.labels else None
            log_posterior[k] += math.log(p if p else fallback[k][answer])
    top = max(log_posterior.values())
    weights = {k: math.exp(v - top) for k, v in log_posterior.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def dawid_skene_label(fit: DawidSkeneFit, votes: Mapping[Hashable, str]) -> tuple[str | None, float]:
    """The most probable true label and its posterior; (None, p) when the top two tie (left to adjudication)."""
    posterior = dawid_skene_posterior(fit, votes)
    ranked = sorted(posterior.items(), key=lambda pair: -pair[1])
    if len(ranked) > 1 and math.isclose(ranked[0][1], ranked[1][1], rel_tol=1e-9):
        return None, ranked[0][1]
    return ranked[0]
