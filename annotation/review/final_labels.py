"""The final label of a sample: adjudicated > human (across annotators) > LLM, with a weight.

Survey §3.2.1 (sample reweighting) and §3.2.2 (human intervention). Weights: adjudicated and human-verified
items weigh 1.0 (a human majority weighs the share of annotators who agree); an LLM label weighs its
confidence. A tie between annotators is left for adjudication: the sample keeps its LLM label meanwhile and
`needs_adjudication` says so.

Annotators' answers combine by majority vote, or — the project's review setting `label_aggregation` — by
Dawid–Skene (annotation.review.aggregation): the label with the highest posterior under the project's last
fit of each annotator's confusion matrix, weighing that posterior; a clearly more reliable annotator then
settles what a vote would tie. The fit is refreshed by annotation.review.reliability.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection, transaction

from annotation.models import LabelAggregation, ReviewSettings
from annotation.review.aggregation import DawidSkeneFit, dawid_skene_label
from synthstudio.models import FinalSource, HumanAnnotation, HumanSource, LLMAnnotation, Sample

LABEL_POLICY = "adjudicated > human majority > llm"
LABEL_POLICY_DAWID_SKENE = "adjudicated > human (Dawid–Skene) > llm"


@dataclass(frozen=True)
class FinalLabel:
    label: str
    source: str
    weight: float
    needs_adjudication: bool = False


def decide_final_label(
    *,
    adjudicated: str | None,
    human_labels: list[str],
    llm_label: str | None,
    llm_confidence: float | None,
    human_decision: tuple[str | None, float] | None = None,
) -> FinalLabel:
    """Pure rule: no database. human_labels are the current labels of distinct annotators; human_decision, when
    given, is an annotator-aware aggregate of them — (label, its posterior), or (None, _) for a tie."""
    if adjudicated:
        return FinalLabel(adjudicated, FinalSource.ADJUDICATED, 1.0)
    votes = Counter(label for label in human_labels if label)
    if votes and human_decision is not None:
        label, weight = human_decision
        if label:
            return FinalLabel(label, FinalSource.HUMAN, max(0.0, min(1.0, float(weight))))
        tie = True
    elif votes:
        ranked = votes.most_common()
        top_label, top_count = ranked[0]
        if len(ranked) == 1 or ranked[1][1] < top_count:
            return FinalLabel(top_label, FinalSource.HUMAN, top_count / sum(votes.values()))
        tie = True
    else:
        tie = False
    if llm_label:
        weight = float(llm_confidence) if llm_confidence is not None else 0.5
        return FinalLabel(llm_label, FinalSource.LLM, max(0.0, min(1.0, weight)), needs_adjudication=tie)
    return FinalLabel("", FinalSource.NONE, 0.0, needs_adjudication=tie)


def label_policy(project_id: int) -> str:
    """How this project's final labels are decided, in the words a snapshot records."""
    dawid_skene = ReviewSettings.objects.filter(
        project_id=project_id, label_aggregation=LabelAggregation.DAWID_SKENE
    ).exists()
    return LABEL_POLICY_DAWID_SKENE if dawid_skene else LABEL_POLICY


# Read on every answer, so cached per process like the gold rate; label_aggregation_forget() clears it after a
# switch or a refit, and another process's copy is at most this old.
AGGREGATION_CACHE_SECONDS = 10


def _aggregation_cache_key(project_id: int) -> str:
    return f"review:label-aggregation:{project_id}"


def label_aggregation_fit(project_id: int) -> DawidSkeneFit | None:
    """The project's Dawid–Skene fit when its final labels use Dawid–Skene (else None: majority vote)."""
    key = _aggregation_cache_key(project_id)
    cached = cache.get(key)
    if cached is None:
        stored = (
            ReviewSettings.objects.filter(
                project_id=project_id, label_aggregation=LabelAggregation.DAWID_SKENE
            )
            .values_list("annotator_reliability", flat=True)
            .first()
        )
        cached = ("fit", stored) if stored else ("majority", None)
        cache.set(key, cached, AGGREGATION_CACHE_SECONDS)
    return DawidSkeneFit.from_json(cached[1]) if cached[1] else None


def label_aggregation_forget(project_id: int) -> None:
    """Drop the cached method/fit now and again after the commit (a reader may cache the old one before it)."""
    key = _aggregation_cache_key(project_id)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


def _decision(
    human_rows: list[tuple], llm: tuple[str, float | None] | None, fit: DawidSkeneFit | None = None
) -> FinalLabel:
    """human_rows: (source, label, annotator_id, row_id), newest first; llm: the current valid (label, confidence);
    fit: the project's Dawid–Skene fit when it aggregates by Dawid–Skene."""
    adjudicated = next(
        (label for source, label, _, _ in human_rows if source == HumanSource.ADJUDICATION), None
    )
    # newest answer per annotator (rows come newest first); imported human labels count as one voter each
    latest: dict[object, str] = {}
    for source, label, annotator_id, row_id in human_rows:
        if source == HumanSource.ADJUDICATION:
            continue
        key = annotator_id if annotator_id is not None else f"row-{row_id}"
        latest.setdefault(key, label)
    return decide_final_label(
        adjudicated=adjudicated,
        human_labels=list(latest.values()),
        llm_label=llm[0] if llm else None,
        llm_confidence=llm[1] if llm else None,
        human_decision=dawid_skene_label(fit, latest) if fit is not None and latest else None,
    )


_NOT_GIVEN = object()


def final_label_refresh(
    *, sample: Sample, llm: LLMAnnotation | None = _NOT_GIVEN, human_rows: list[tuple] | None = None
) -> FinalLabel:
    """Recompute and store the sample's final label from its annotations. `llm`: the sample's current valid LLM
    annotation (or None), `human_rows`: its labelled human annotations as (source, label, annotator_id, id),
    newest first — when the caller has read them already, with the sample's row locked (final_label_lock)."""
    if human_rows is None:
        final_label_lock(sample_id=sample.pk)
        human_rows = human_label_rows(sample.pk)
    if llm is _NOT_GIVEN:
        llm = sample.current_llm_annotation()
    fit = label_aggregation_fit(sample.project_id) if human_rows else None
    decision = _decision(human_rows, (llm.label, llm.confidence) if llm else None, fit)
    Sample.objects.filter(pk=sample.pk).update(
        final_label=decision.label, final_source=decision.source, final_weight=decision.weight
    )
    sample.final_label, sample.final_source, sample.final_weight = (
        decision.label,
        decision.source,
        decision.weight,
    )
    return decision


def final_label_lock(*, sample_id: int) -> None:
    """Inside a transaction, hold the sample's row until it ends, so its final label is computed by one writer
    at a time: two annotators answering the same item at once (overlap > 1) would otherwise each miss the other's
    answer. Read the human annotations in a statement after this one (a statement that waits for a lock keeps
    the snapshot it started with). FOR NO KEY UPDATE, the lock an UPDATE of the row takes anyway: it does not
    wait for, nor block, rows that merely point at the sample (an answer's insert share-locks its key). A no-op
    where the database serialises writers (SQLite)."""
    if connection.features.has_select_for_update and connection.in_atomic_block:
        list(Sample.objects.select_for_update(no_key=True).filter(pk=sample_id).order_by().values_list("pk"))


def human_label_rows(sample_id: int) -> list[tuple]:
    """(source, label, annotator_id, id) of the sample's labelled human annotations, newest first."""
    return list(
        HumanAnnotation.objects.filter(sample_id=sample_id)
        .exclude(label="")
        .order_by("-created_at", "-id")
        .values_list("source", "label", "annotator_id", "id")
    )


def final_labels_refresh_many(*, sample_ids: list[int], batch_size: int = 500) -> int:
    """final_label_refresh for many samples in a few queries per batch (imports, bulk relabelling)."""
    updated = 0
    for start in range(0, len(sample_ids), batch_size):
        chunk = sample_ids[start : start + batch_size]
        human: dict[int, list[tuple]] = {sample_id: [] for sample_id in chunk}
        for sample_id, *row in (
            HumanAnnotation.objects.filter(sample_id__in=chunk)
            .exclude(label="")
            .order_by("-created_at", "-id")
            .values_list("sample_id", "source", "label", "annotator_id", "id")
        ):
            human[sample_id].append(tuple(row))
        llm: dict[int, tuple[str, float | None]] = {}
        for sample_id, label, confidence in (
            LLMAnnotation.objects.filter(sample_id__in=chunk, is_current=True, valid=True)
            .order_by("-created_at", "-id")
            .values_list("sample_id", "label", "confidence")
        ):
            llm.setdefault(sample_id, (label, confidence))
        fits: dict[int, DawidSkeneFit | None] = {}
        project_of = dict(Sample.objects.filter(pk__in=chunk).values_list("pk", "project_id"))
        samples = []
        for sample_id in chunk:
            project_id = project_of.get(sample_id)
            if project_id is not None and project_id not in fits:
                fits[project_id] = label_aggregation_fit(project_id)
            decision = _decision(human[sample_id], llm.get(sample_id), fits.get(project_id))
            samples.append(
                Sample(
                    pk=sample_id,
                    final_label=decision.label,
                    final_source=decision.source,
                    final_weight=decision.weight,
                )
            )
        updated += Sample.objects.bulk_update(samples, ["final_label", "final_source", "final_weight"])
    return updated
