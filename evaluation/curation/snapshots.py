"""Curated snapshots: load a project's samples with the signals the filters need, preview what each filter
removes, freeze the kept items into an immutable Snapshot, diff two snapshots.

A sample's text here is its current text: the correction a lead accepted (annotation.review.lead), else the
original. A snapshot row keeps both (`text`, and `original_text` when corrected); a correction accepted later
reaches the next snapshot only."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Max

from annotation.models import CorrectionStatus, SampleTextVersion
from annotation.review.final_labels import label_policy
from annotation.routing.certificates import (
    certificate_as_dict,
    certificate_is_stale,
    certificate_latest,
)
from evaluation.curation.filters import (
    RATING_SCORES,
    CurationItem,
    CurationResult,
    FilterSettings,
    curate,
    stratified_split,
)
from evaluation.curation.weights import sample_weights_get, snapshot_weights
from evaluation.dashboards.metrics import krippendorff_alpha_nominal
from evaluation.models import CurationSettings, JudgeKind, JudgeRating, Snapshot, SnapshotItem
from synthstudio.embeddings import embed_texts
from synthstudio.models import (
    HUMAN_VERIFIED_SOURCES,
    FinalSource,
    HumanAnnotation,
    HumanSource,
    LLMAnnotation,
    Project,
    Sample,
)

SNAPSHOT_BATCH = 2000
SAMPLE_COLUMNS = (
    "id",
    "text",
    "final_label",
    "final_source",
    "final_weight",
    "fields",
    "origin",
    "provenance",
)


def curation_settings_get(*, project: Project) -> FilterSettings:
    row = CurationSettings.objects.filter(project=project).first()
    return FilterSettings.from_dict(row.filters if row else {})


def curation_settings_save(*, project: Project, settings: FilterSettings) -> None:
    CurationSettings.objects.update_or_create(project=project, defaults={"filters": settings.as_dict()})


@dataclass
class CurationInput:
    rows: list[tuple]  # SAMPLE_COLUMNS, in id order; `text` is the current text (an accepted correction)
    items: list[CurationItem]
    llm_current: dict[int, tuple[str, float | None]]  # sample id -> (label, confidence)
    # sample id -> the text before its accepted correction (corrected samples only)
    original_texts: dict[int, str]


def accepted_corrections(*, project: Project) -> dict[int, str]:
    """Sample id -> the corrected text a lead accepted (at most one per sample; pending ones are unused)."""
    return dict(
        SampleTextVersion.objects.filter(sample__project=project, status=CorrectionStatus.ACCEPTED)
        .values_list("sample_id", "text")
        .iterator(chunk_size=5000)
    )


def curation_input_load(*, project: Project) -> CurationInput:
    """Every sample of the project with its current text, final label and filter signals, in a fixed number
    of queries."""
    corrected = accepted_corrections(project=project)
    original_texts: dict[int, str] = {}
    rows = []
    for row in Sample.objects.filter(project=project).order_by("id").values_list(*SAMPLE_COLUMNS):
        if row[0] in corrected:
            original_texts[row[0]] = row[1]
            row = (row[0], corrected[row[0]], *row[2:])
        rows.append(row)
    llm_labels: dict[int, set[str]] = defaultdict(set)
    llm_current: dict[int, tuple[str, float | None]] = {}
    for sample_id, label, confidence, is_current in (
        LLMAnnotation.objects.filter(sample__project=project, valid=True)
        .exclude(label="")
        .values_list("sample_id", "label", "confidence", "is_current")
        .iterator(chunk_size=5000)
    ):
        llm_labels[sample_id].add(label)
        if is_current:
            llm_current[sample_id] = (label, confidence)
    flagged = set(
        HumanAnnotation.objects.filter(sample__project=project)
        .exclude(flag="")
        .values_list("sample_id", flat=True)
    )
    excluded = set(
        Sample.objects.filter(project=project, excluded_from_snapshots=True).values_list("id", flat=True)
    )
    judge_scores: dict[int, float] = {}
    # the newest rating per sample wins (rows ordered by run, oldest first)
    for sample_id, rating in (
        JudgeRating.objects.filter(run__project=project, run__kind=JudgeKind.RATING)
        .exclude(rating="")
        .order_by("run_id")
        .values_list("sample_id", "rating")
    ):
        if rating in RATING_SCORES:
            judge_scores[sample_id] = RATING_SCORES[rating]
    items = [
        CurationItem(
            text=text,
            label=label,
            human_verified=source in HUMAN_VERIFIED_SOURCES,
            confidence=weight if source == FinalSource.LLM else llm_current.get(sample_id, ("", None))[1],
            llm_labels=frozenset(llm_labels.get(sample_id, ())),
            judge_score=judge_scores.get(sample_id),
            flagged=sample_id in flagged,
            excluded=sample_id in excluded,
        )
        for sample_id, text, label, source, weight, *_ in rows
    ]
    return CurationInput(rows=rows, items=items, llm_current=llm_current, original_texts=original_texts)


def curation_run(*, project: Project, settings: FilterSettings) -> tuple[CurationInput, CurationResult]:
    data = curation_input_load(project=project)
    embeddings = None
    if settings.near_duplicate_threshold is not None and data.rows:
        embeddings = embed_texts([row[1] for row in data.rows])
    return data, curate(data.items, settings, embeddings=embeddings)


def human_agreement(*, project: Project) -> dict:
    """Krippendorff's alpha (nominal) over samples with two or more human labels, when there are any."""
    units: dict[int, dict[object, str]] = defaultdict(dict)
    for sample_id, annotator_id, row_id, label in (
        HumanAnnotation.objects.filter(sample__project=project)
        .exclude(label="")
        .exclude(source=HumanSource.ADJUDICATION)
        .order_by("created_at", "id")
        .values_list("sample_id", "annotator_id", "id", "label")
    ):
        units[sample_id][annotator_id if annotator_id is not None else f"row-{row_id}"] = label
    pairable = [list(labels.values()) for labels in units.values() if len(labels) >= 2]
    if not pairable:
        return {}
    alpha = krippendorff_alpha_nominal(pairable)
    return {
        "krippendorff_alpha": None if math.isnan(alpha) else round(alpha, 4),
        "items_multiply_labelled": len(pairable),
    }


def snapshot_certificate(*, project: Project, kept_count: int) -> dict:
    """The project's latest label certificate as the snapshot stores it, {} without one.

    `stale` is true when the project's samples or final labels differ from what the certificate speaks for
    (read after the rows were loaded, so a change during the build errs towards stale). A certificate bounds
    the error over all of the project's final labels; when filters kept only some items the statement says
    so instead of claiming the bound for the subset."""
    certificate = certificate_latest(project=project)
    if certificate is None:
        return {}
    return certificate_as_dict(
        certificate, stale=certificate_is_stale(certificate), snapshot_item_count=kept_count
    )


def _percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}".removesuffix(".0") + " %"


def certificate_figures(data: dict) -> list[tuple[str, str]]:
    """(name, value) rows of a stored certificate, in the order the snapshot page and the dataset card show
    them; the statement itself is `data["statement"]`."""
    agreement = data.get("reviewer_agreement") or {}
    threshold = "—" if data.get("threshold") is None else f"{data['threshold']:.4g}"
    rows = [
        ("Target error ε", _percent(data["epsilon"])),
        ("Confidence 1 − α", _percent(data["confidence"])),
        (
            "Estimated error [CI]",
            f"{_percent(data['estimated_error'])} "
            f"[{_percent(data['error_ci_low'])}, {_percent(data['error_ci_high'])}]",
        ),
        ("Upper bound on the error of the kept LLM labels", _percent(data.get("upper_bound"))),
        (
            "Human share",
            f"{_percent(data['human_share'])} ({data['human_count']} of {data['item_count']} items, "
            f"{data['calibration_count']} of them in the calibration sample)",
        ),
        (
            "Reviewer agreement",
            "; ".join(f"{key}: {value}" for key, value in sorted(agreement.items())) or "not measured",
        ),
        ("Uncertainty score", f"{data.get('score') or '—'}; humans label items scoring ≥ {threshold}"),
        ("Certified at", str(data.get("created_at", "—"))),
    ]
    if "snapshot_item_count" in data:
        held = data["snapshot_item_count"]
        rows.append(("Items", f"certified over {data['item_count']}; this snapshot holds {held}"))
    return rows


def snapshot_reserve(*, project: Project, user, note: str = "", licence: str = "unknown") -> Snapshot:
    """The next version number, taken by a hidden (is_ready=False) row that snapshot_build fills."""
    with transaction.atomic():
        latest = (
            Snapshot.objects.select_for_update().filter(project=project).aggregate(v=Max("version"))["v"] or 0
        )
        return Snapshot.objects.create(
            project=project,
            version=latest + 1,
            note=note,
            created_by=user,
            label_policy=label_policy(project.id),
            licence=licence or "unknown",
            is_ready=False,
        )


def snapshot_build(
    *,
    snapshot: Snapshot,
    settings: FilterSettings,
    split_fractions: dict[str, float] | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
) -> Snapshot:
    """Fill a reserved snapshot with the items that pass the filters, their final labels and weights, then
    mark it ready. Rows are written in committed batches (a worker's progress stays visible) but the snapshot
    is hidden until the last one lands; a rebuild after a crash first deletes the rows a dead build left.

    The rows are copied: later label edits, sample deletions or filter changes never alter the snapshot.
    """
    if snapshot.is_ready:
        return snapshot  # built already: snapshots never change
    SnapshotItem.objects.filter(snapshot=snapshot).delete()
    project = snapshot.project
    if stage:
        stage("Applying the curation filters…")
    data, result = curation_run(project=project, settings=settings)
    kept = [row for row, keep in zip(data.rows, result.keep, strict=True) if keep]
    weights_method = sample_weights_get(project=project)  # the project's option: rule or learned
    if stage and weights_method != "rule":
        stage("Learning sample weights against the human-verified items…")
    weighting = snapshot_weights(method=weights_method, rows=data.rows, kept=kept)
    fractions = {name: float(value) for name, value in (split_fractions or {}).items() if float(value) > 0}
    splits = (
        stratified_split([row[2] for row in kept], fractions, seed=seed)
        if fractions
        else ["train"] * len(kept)
    )
    codebook = project.codebook
    label_counts = Counter(row[2] for row in kept)
    snapshot.filter_settings = settings.as_dict()
    snapshot.codebook = codebook
    snapshot.codebook_version = codebook.version if codebook else None
    snapshot.label_names = codebook.label_names if codebook else sorted(label_counts)
    snapshot.split_fractions = fractions
    snapshot.item_count = len(kept)
    snapshot.label_counts = dict(label_counts)
    snapshot.removed_counts = result.counts
    snapshot.certificate = snapshot_certificate(project=project, kept_count=len(kept))
    snapshot.stats = {
        "agreement": human_agreement(project=project),
        "sources": dict(Counter(row[3] for row in kept)),
        "origins": dict(Counter(row[6] for row in kept)),
        "splits": dict(Counter(splits)),
        "weights": weighting.stats,
        "generation_runs": sorted(
            {str(row[7].get("run")) for row in kept if isinstance(row[7], dict) and row[7].get("run")}
        )[:50],
    }
    snapshot.save()
    if stage:
        stage(f"Writing {len(kept)} rows…")
    written = 0
    batch: list[SnapshotItem] = []
    for row, split, weight in zip(kept, splits, weighting.weights, strict=True):
        sample_id, text, label, source, _rule_weight, fields, origin, provenance = row
        llm_label, llm_confidence = data.llm_current.get(sample_id, ("", None))
        batch.append(
            SnapshotItem(
                snapshot=snapshot,
                sample_id=sample_id,
                sample_ref=sample_id,
                text=text,
                original_text=data.original_texts.get(sample_id),
                fields=fields or {},
                label=label,
                label_source=source,
                weight=weight,
                split=split,
                llm_label=llm_label,
                llm_confidence=llm_confidence,
                origin=origin,
                provenance=provenance or {},
            )
        )
        if len(batch) >= SNAPSHOT_BATCH:
            SnapshotItem.objects.bulk_create(batch)
            written += len(batch)
            batch = []
            if progress:
                progress(written, len(kept))
    SnapshotItem.objects.bulk_create(batch)
    written += len(batch)
    if progress:
        progress(written, len(kept))
    return snapshot


def snapshot_mark_ready(snapshot: Snapshot) -> None:
    snapshot.is_ready = True
    Snapshot.objects.filter(pk=snapshot.pk).update(is_ready=True)


def snapshot_create(
    *,
    project: Project,
    user,
    settings: FilterSettings,
    split_fractions: dict[str, float] | None = None,
    note: str = "",
    licence: str = "unknown",
    seed: int = 0,
) -> Snapshot:
    """Reserve, build and show a snapshot in this process (tests, benchmarks; pages use a SnapshotJob)."""
    snapshot = snapshot_reserve(project=project, user=user, note=note, licence=licence)
    snapshot_build(snapshot=snapshot, settings=settings, split_fractions=split_fractions, seed=seed)
    snapshot_mark_ready(snapshot)
    return snapshot


ROW_COLUMNS = (
    "sample_ref",
    "text",
    "original_text",
    "label",
    "label_source",
    "weight",
    "split",
    "llm_label",
    "llm_confidence",
    "origin",
    "fields",
    "provenance",
)


def snapshot_rows(snapshot: Snapshot, *, split: str | None = None, chunk_size: int = 2000) -> Iterator[dict]:
    """The snapshot's rows as dicts, streamed from the database in chunks (memory does not grow with size)."""
    items = SnapshotItem.objects.filter(snapshot=snapshot)
    if split:
        items = items.filter(split=split)
    for values in items.order_by("id").values_list(*ROW_COLUMNS).iterator(chunk_size=chunk_size):
        yield dict(zip(ROW_COLUMNS, values, strict=True))


def snapshot_splits(snapshot: Snapshot) -> list[str]:
    order = {"train": 0, "validation": 1, "test": 2}
    present = set(SnapshotItem.objects.filter(snapshot=snapshot).values_list("split", flat=True).distinct())
    return sorted(present, key=lambda name: (order.get(name, 9), name))


@dataclass
class SnapshotDiff:
    added: list[dict]
    removed: list[dict]
    relabelled: list[dict]
    text_changed: list[dict] = field(default_factory=list)  # e.g. a correction accepted between the two


def snapshot_diff(*, old: Snapshot, new: Snapshot) -> SnapshotDiff:
    """Items added, removed, relabelled and with a changed text between two snapshots, matched by the sample
    they came from."""

    def load(snapshot: Snapshot) -> dict[int, tuple[str, str]]:
        return {
            ref: (text, label)
            for ref, text, label in SnapshotItem.objects.filter(snapshot=snapshot).values_list(
                "sample_ref", "text", "label"
            )
        }

    before, after = load(old), load(new)
    added = [
        {"sample_id": ref, "text": after[ref][0], "label": after[ref][1]}
        for ref in sorted(after.keys() - before.keys())
    ]
    removed = [
        {"sample_id": ref, "text": before[ref][0], "label": before[ref][1]}
        for ref in sorted(before.keys() - after.keys())
    ]
    relabelled = [
        {"sample_id": ref, "text": after[ref][0], "old_label": before[ref][1], "new_label": after[ref][1]}
        for ref in sorted(before.keys() & after.keys())
        if before[ref][1] != after[ref][1]
    ]
    text_changed = [
        {"sample_id": ref, "old_text": before[ref][0], "new_text": after[ref][0], "label": after[ref][1]}
        for ref in sorted(before.keys() & after.keys())
        if before[ref][0] != after[ref][0]
    ]
    return SnapshotDiff(added=added, removed=removed, relabelled=relabelled, text_changed=text_changed)
