"""The unbiased estimates page (Evaluation → Estimates, ALGORITHMS.md §8): label prevalence, the accuracy of the
raw LLM labels and of the final labels (overall and per label), human–LLM agreement and the share of acceptable
generated samples, each with a point estimate and an interval from the audit sample (PPI++ when it is uniform,
CDI with the recorded inclusion probabilities otherwise), beside the human-only interval from the same answers
and the routed-items-only figure the other dashboards show, which is biased.

This module loads rows and builds, per statistic, what evaluation.estimates_core.batched_estimates takes (f:
the LLM's prediction per item, y: the human value or NaN, and per routing batch its audit draw: the tasks with a
recorded 0 < π < 1, what was known before the batch and which items it drew from, from the times of samples,
tasks and answers); the maths is there. Computed per request: one pass over the project's samples, labels,
answers and tasks.

Populations: the label statistics are over the samples with a current valid LLM label (the others are counted
and left out); acceptability is over the generated samples. The truth of an item is its human final label
(human or adjudicated), or else the majority of its annotators' newest answers.

Why the final labels need no estimator of their own: an item a human answered has the human label as its final
label, and every other item keeps the LLM's label, so the share of right final labels is the LLM's accuracy plus
the share of LLM labels humans already corrected (a known count). Their interval is the LLM accuracy's, moved.
The same holds for prevalence: the final labels of the items no human saw are the LLM's, so the LLM's
predictions are the only ones that do not already contain the sample's answers.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from annotation.models import ReviewTask
from annotation.routing.services import cross_fitted_error_by_sample
from evaluation.dashboards.services import ACCEPTABLE_RATINGS, UNFAITHFUL_FLAGS
from evaluation.estimates_core import (
    MIN_AUDIT,
    AuditBatch,
    MeanEstimates,
    batched_estimates,
    restrict,
    shifted_mean_estimates,
)
from evaluation.estimation import Estimate, routed_only_estimate
from evaluation.models import JudgeRating
from synthstudio.models import (
    HUMAN_VERIFIED_SOURCES,
    HumanAnnotation,
    HumanSource,
    LabelMethod,
    LLMAnnotation,
    Origin,
    Project,
    Sample,
)

DEFAULT_ALPHA = 0.10
METHOD_NAMES = {
    "ppi++": "PPI++",
    "cdi": "CDI",
    "human_only": "humans only (the LLM's predictions add nothing here)",
}
NO_AUDIT_MESSAGE = "No audit sample: these figures are from routed items only and are biased."


def estimates_alpha(raw: str | None) -> float:
    """α from the page's ?confidence= (a percentage, 50–99.9); the default 90 % interval otherwise."""
    try:
        confidence = float(raw) if raw not in (None, "") else 100 * (1 - DEFAULT_ALPHA)
    except ValueError:
        return DEFAULT_ALPHA
    if not 50 <= confidence <= 99.9:
        return DEFAULT_ALPHA
    return round(1 - confidence / 100, 6)


def _interval(estimate: Estimate | None) -> dict | None:
    """A proportion's interval for display, clipped to [0, 1]."""
    if estimate is None:
        return None
    return {
        "point": min(1.0, max(0.0, estimate.point)),
        "low": max(0.0, estimate.low),
        "high": min(1.0, estimate.high),
        "n": estimate.human_labels,
    }


def _row(name: str, estimates: MeanEstimates | None, *, note: str = "", reason: str = "", **extra) -> dict:
    routed = estimates.routed_only if estimates is not None else None
    return {
        "name": name,
        "note": note,
        "estimate": _interval(estimates.estimate) if estimates else None,
        "method": METHOD_NAMES[estimates.estimate.method] if estimates and estimates.estimate else "",
        "human_only": _interval(estimates.human_only) if estimates else None,
        "width_ratio": estimates.width_ratio if estimates else None,
        "routed_only": None
        if routed is None or math.isnan(routed.point)
        else {"value": routed.point, "n": routed.human_labels},
        "audit_answers": estimates.audit_answers if estimates else 0,
        "reason": reason or (estimates.reason if estimates else ""),
        **extra,
    }


def _majority(labels: list[str]) -> str:
    """Most frequent label; ties go to the newest answer (labels arrive newest first)."""
    counts = Counter(labels)
    best = max(counts.values())
    return next(label for label in labels if counts[label] == best)


class _Design:
    """When each routing batch was made and what it drew: every task with a recorded 0 < π < 1 is a draw of its
    batch; a batch starts at its first task. Before a batch, an item was *known* if a human had answered it, and
    a *candidate* if it existed, had no task yet and was not known (as annotation.routing.services picks them)."""

    def __init__(self, *, project: Project, samples, first_answer: dict[int, float]) -> None:
        self.created = {s[0]: s[4].timestamp() for s in samples}
        self.first_answer = first_answer
        self.first_task: dict[int, float] = {}
        starts: dict[int, float] = {}
        draws: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for sample_id, batch, pi, created_at in (
            ReviewTask.objects.filter(project=project)
            .order_by("id")
            .values_list("sample_id", "batch", "inclusion_probability", "created_at")
        ):
            moment = created_at.timestamp()
            self.first_task[sample_id] = min(moment, self.first_task.get(sample_id, math.inf))
            starts[batch] = min(moment, starts.get(batch, math.inf))
            if pi is not None and 0 < pi < 1:
                draws[batch].append((sample_id, pi))
        self.draws = [(starts[batch], draws[batch]) for batch in sorted(draws, key=lambda b: starts[b])]
        self.drawn_count = sum(len(d) for _start, d in self.draws)

    def batches(self, ids: list[int]) -> list[AuditBatch]:
        position = {sample_id: index for index, sample_id in enumerate(ids)}
        created = np.array([self.created[i] for i in ids])
        first_task = np.array([self.first_task.get(i, math.inf) for i in ids])
        first_answer = np.array([self.first_answer.get(i, math.inf) for i in ids])
        out = []
        for start, draws in self.draws:
            inside = [(position[sample_id], pi) for sample_id, pi in draws if sample_id in position]
            drawn = np.array([index for index, _pi in inside], dtype=np.int64)
            known = first_answer < start
            candidates = (created <= start) & (first_task >= start) & ~known
            candidates[drawn] = True
            out.append(
                AuditBatch(known, candidates, drawn, np.array([pi for _i, pi in inside], dtype=np.float64))
            )
        return out


def project_estimates(*, project: Project, alpha: float = DEFAULT_ALPHA) -> dict:
    """Everything the estimates page shows, for the project's current data."""
    codebook = project.codebook
    label_names = list(codebook.label_names) if codebook else []
    samples = list(
        Sample.objects.filter(project=project).values_list(
            "id", "final_label", "final_source", "origin", "created_at"
        )
    )
    llm: dict[int, tuple[str, dict, float | None, str]] = {}
    for sample_id, label, distribution, confidence, method in (
        LLMAnnotation.objects.filter(sample__project=project, is_current=True, valid=True)
        .exclude(label="")
        .order_by("sample_id", "-id")
        .values_list("sample_id", "label", "distribution", "confidence", "method")
    ):
        llm.setdefault(sample_id, (label, distribution or {}, confidence, method))
    answers: dict[int, dict[int | str, tuple[str, str, str]]] = defaultdict(dict)
    first_answer: dict[int, float] = {}
    for sample_id, annotator_id, answer_id, label, rating, flag, created_at in (
        HumanAnnotation.objects.filter(sample__project=project)
        .exclude(source=HumanSource.ADJUDICATION)
        .order_by("-created_at", "-id")
        .values_list("sample_id", "annotator_id", "id", "label", "rating", "flag", "created_at")
    ):
        first_answer[sample_id] = created_at.timestamp()  # rows arrive newest first: the oldest stays
        # newest answer per annotator; imported answers (no annotator) count one each
        answers[sample_id].setdefault(
            annotator_id if annotator_id is not None else f"a{answer_id}", (label, rating, flag)
        )
    design = _Design(project=project, samples=samples, first_answer=first_answer)

    truth: dict[int, str] = {}
    final_of: dict[int, tuple[str, str]] = {}
    for sample_id, final_label, final_source, _origin, _created in samples:
        final_of[sample_id] = (final_label, final_source)
        if final_source in HUMAN_VERIFIED_SOURCES and final_label:
            truth[sample_id] = final_label
        else:
            labels = [label for label, _r, _f in answers.get(sample_id, {}).values() if label]
            if labels:
                truth[sample_id] = _majority(labels)

    population = [s[0] for s in samples if s[0] in llm]
    n = len(population)
    batches = design.batches(population)
    llm_label = [llm[i][0] for i in population]
    confidence = np.array(
        [llm[i][2] if llm[i][2] is not None else llm[i][1].get(llm[i][0], 1.0) for i in population],
        dtype=np.float64,
    )
    # "the LLM is right" is predicted by the learned router, cross-fitted on the human answers, once it can learn
    # (narrower intervals than the LLM's confidence: ALGORITHMS.md §8); the LLM's confidence before that
    learned_error = cross_fitted_error_by_sample(project=project) if n else None
    predicted_right = (
        np.array([1.0 - learned_error[i] for i in population]) if learned_error is not None else confidence
    )
    true_label = [truth.get(i) for i in population]
    answered = np.array([t is not None for t in true_label], dtype=bool)
    audit_answers = int(sum(answered[b.drawn].sum() for b in batches))
    names = label_names + sorted(({*llm_label} | {t for t in true_label if t}) - set(label_names))

    sections = []
    if n:
        sections.append(_prevalence_section(population, names, llm, true_label, final_of, batches, alpha))
        sections.append(
            _accuracy_section(
                population, names, llm_label, true_label, predicted_right, final_of, batches, answered, alpha
            )
        )
        sections.append(_agreement_section(population, llm_label, answers, predicted_right, batches, alpha))
    sections.append(_acceptability_section(samples, answers, design, project, alpha))
    methods = {row["method"] for section in sections for row in section["rows"] if row["method"]}
    return {
        "alpha": alpha,
        "confidence_percent": round(100 * (1 - alpha), 1),
        "population": n,
        "samples": len(samples),
        "without_llm_label": len(samples) - n,
        "offline_llm": sum(1 for i in population if llm[i][3] == LabelMethod.OFFLINE),
        "answered": int(answered.sum()),
        "audit_drawn": design.drawn_count,
        "audit_answers": audit_answers,
        "has_audit": audit_answers > 0,
        "enough_audit": audit_answers >= MIN_AUDIT,
        "min_audit": MIN_AUDIT,
        "methods": sorted(methods),
        "right_predicted_by": "the learned router (cross-fitted on the human answers)"
        if learned_error is not None
        else "the LLM's confidence",
        "sections": sections,
    }


def _prevalence_section(population, names, llm, true_label, final_of, batches, alpha) -> dict:
    n = len(population)
    rows = []
    final_counts = Counter(final_of[i][0] for i in population if final_of[i][0])
    llm_counts = Counter(llm[i][0] for i in population)
    for name in names:
        f = np.array([float(llm[i][1].get(name, 1.0 if llm[i][0] == name else 0.0)) for i in population])
        y = np.array([np.nan if t is None else float(t == name) for t in true_label])
        rows.append(
            _row(
                name,
                batched_estimates(f, y, batches, alpha=alpha),
                final_share=final_counts.get(name, 0) / n,
                llm_share=llm_counts.get(name, 0) / n,
            )
        )
    return {
        "key": "prevalence",
        "title": "Label prevalence: the share of items whose true label is each label",
        "explain": "The estimate is the true share; 'final labels' and 'raw LLM labels' are the shares in the "
        "data as it stands (counts, no interval).",
        "rows": rows,
        "with_shares": True,
    }


def _accuracy_section(
    population, names, llm_label, true_label, confidence, final_of, batches, answered, alpha
):
    n = len(population)
    right = np.array(
        [np.nan if t is None else float(t == label) for t, label in zip(true_label, llm_label, strict=True)]
    )
    overall = batched_estimates(confidence, right, batches, alpha=alpha)
    # final labels: humans' answers replaced the LLM's labels they corrected, a known count
    corrected = sum(
        1
        for i, t, label in zip(population, true_label, llm_label, strict=True)
        if final_of[i][1] in HUMAN_VERIFIED_SOURCES and t is not None and t != label
    )
    final_right = np.array(
        [float(final_of[i][0] == t) for i, t in zip(population, true_label, strict=True) if t is not None]
    )
    final = shifted_mean_estimates(overall, by=corrected / n, routed_only=routed_only_estimate(final_right))
    rows = [
        _row("LLM labels right (all labels)", overall, note="raw LLM labels against the human label"),
        _row(
            "Final labels right (all labels)",
            final,
            note=f"the LLM's accuracy plus the {corrected} LLM label{'s' if corrected != 1 else ''} humans "
            "corrected; routed items' final labels are the humans' own",
        ),
    ]
    labels = np.array(llm_label, dtype=object)
    for name in names:
        inside = labels == name
        if not inside.any():
            continue
        estimates = batched_estimates(
            confidence[inside], right[inside], restrict(batches, inside), alpha=alpha
        )
        rows.append(
            _row(
                f"LLM labels right where the LLM said “{name}”",
                estimates,
                label=name,
                note=f"precision of {name}: {int(inside.sum())} items",
            )
        )
    return {
        "key": "accuracy",
        "title": "Accuracy: the share of labels that are right (the human label is the truth)",
        "explain": "Per label: of the items the LLM gave that label, the share that truly have it.",
        "rows": rows,
        "with_shares": False,
    }


def _agreement_section(population, llm_label, answers, confidence, batches, alpha) -> dict:
    y, per_answer = [], []
    for i, label in zip(population, llm_label, strict=True):
        given = [answer for answer, _r, _f in answers.get(i, {}).values() if answer]
        if given:
            agree = [float(answer == label) for answer in given]
            y.append(float(np.mean(agree)))
            per_answer.extend(agree)
        else:
            y.append(np.nan)
    estimates = batched_estimates(confidence, np.array(y), batches, alpha=alpha)
    routed = routed_only_estimate(np.array(per_answer))
    estimates = MeanEstimates(
        estimates.estimate,
        estimates.human_only,
        routed,
        estimates.population,
        estimates.audit_answers,
        estimates.known_answers,
        estimates.uniform,
        estimates.reason,
    )
    return {
        "key": "agreement",
        "title": "Human–LLM agreement: the share of human answers that match the LLM's label",
        "explain": "Per item the share of its annotators who chose the LLM's label, averaged over all items.",
        "rows": [_row("Human answers matching the LLM label", estimates)],
        "with_shares": False,
    }


def _acceptability_section(samples, answers, design, project, alpha) -> dict:
    generated = [s[0] for s in samples if s[3] == Origin.GENERATED]
    section = {
        "key": "acceptability",
        "title": "Acceptable generated samples: rated A or B by humans and not flagged unfaithful, harmful or "
        "off-topic",
        "explain": "The prediction is the judge's rating where a judge run rated the sample.",
        "rows": [],
        "with_shares": False,
    }
    if not generated:
        section["rows"].append(_row("Acceptable generated samples", None, reason="no generated samples"))
        return section
    judged: dict[int, tuple[str, bool]] = {}
    for sample_id, rating, offline in (
        JudgeRating.objects.filter(sample__project=project, sample__origin=Origin.GENERATED)
        .exclude(rating="")
        .order_by("-run_id")
        .values_list("sample_id", "rating", "run__is_offline")
    ):
        judged.setdefault(sample_id, (rating, offline))
    judge_values = [float(judged[i][0] in ACCEPTABLE_RATINGS) for i in generated if i in judged]
    fill = float(np.mean(judge_values)) if judge_values else 0.5
    f = np.array([float(judged[i][0] in ACCEPTABLE_RATINGS) if i in judged else fill for i in generated])
    y, per_rating = [], []
    for i in generated:
        verdicts = [
            float(rating in ACCEPTABLE_RATINGS and flag not in UNFAITHFUL_FLAGS)
            for _label, rating, flag in answers.get(i, {}).values()
            if rating or flag in UNFAITHFUL_FLAGS
        ]
        y.append(float(np.mean(verdicts)) if verdicts else np.nan)
        per_rating.extend(verdicts)
    estimates = batched_estimates(f, np.array(y), design.batches(generated), alpha=alpha)
    estimates = MeanEstimates(
        estimates.estimate,
        estimates.human_only,
        routed_only_estimate(np.array(per_rating)),
        estimates.population,
        estimates.audit_answers,
        estimates.known_answers,
        estimates.uniform,
        estimates.reason,
    )
    offline_judge = any(judged[i][1] for i in generated if i in judged)
    section["rows"].append(
        _row(
            "Acceptable generated samples",
            estimates,
            offline_judge=offline_judge,
            judged=len(judge_values),
            note=f"{len(generated)} generated samples, {len(judge_values)} rated by a judge",
        )
    )
    return section
