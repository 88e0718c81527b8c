"""Annotator reliability, Django side: fit Dawid–Skene (annotation.review.aggregation) to a project's human
answers, store the fit on its review settings, and re-decide final labels when the project aggregates by it.

The fit reads each annotator's newest answer per sample (imported human labels without an annotator have no
identity to estimate and are left out). Known labels anchor it: gold items' labels and the leads'
adjudications, both decided by a lead rather than voted.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotation.models import GoldItem, LabelAggregation, ReviewSettings
from annotation.review.aggregation import DawidSkeneFit, dawid_skene_fit
from annotation.review.final_labels import final_labels_refresh_many, label_aggregation_forget
from synthstudio.models import HumanAnnotation, HumanSource, Project


def annotator_reliability_refresh(*, project: Project) -> DawidSkeneFit | None:
    """Refit and store; when the project aggregates by Dawid–Skene, refresh every answered sample's final label.
    None when nobody has answered yet."""
    rows = (
        HumanAnnotation.objects.filter(sample__project=project, annotator__isnull=False)
        .exclude(label="")
        .order_by("-created_at", "-id")
        .values_list("sample_id", "annotator_id", "label", "source")
    )
    latest: dict[tuple[int, int], str] = {}
    known: dict[int, str] = {}
    for sample_id, annotator_id, label, source in rows:
        if source == HumanSource.ADJUDICATION:
            known.setdefault(sample_id, label)
        else:
            latest.setdefault((sample_id, annotator_id), label)
    known.update(GoldItem.objects.filter(project=project).values_list("sample_id", "label"))
    codebook = project.codebook
    fit = dawid_skene_fit(
        [(sample_id, annotator_id, label) for (sample_id, annotator_id), label in latest.items()],
        gold=known,
        labels=codebook.label_names if codebook else (),
    )
    stored = {**fit.as_json(), "fitted_at": timezone.now().isoformat()} if fit else {}
    with transaction.atomic():
        settings, _ = ReviewSettings.objects.update_or_create(
            project=project, defaults={"annotator_reliability": stored}
        )
        label_aggregation_forget(project.id)
        if settings.label_aggregation == LabelAggregation.DAWID_SKENE:
            final_labels_refresh_many(sample_ids=sorted({sample_id for sample_id, _ in latest}))
    return fit


def label_aggregation_set(*, project: Project, method: str) -> ReviewSettings:
    """Switch how answers combine, refit Dawid–Skene (its accuracy estimates show under either method) and
    re-decide the answered samples' final labels."""
    if method not in LabelAggregation.values:
        raise ValueError(f"Unknown label aggregation {method!r}.")
    with transaction.atomic():
        settings, _ = ReviewSettings.objects.update_or_create(
            project=project, defaults={"label_aggregation": method}
        )
        label_aggregation_forget(project.id)
        annotator_reliability_refresh(project=project)  # also shown under majority vote, for the lead
        if method == LabelAggregation.MAJORITY:
            answered = HumanAnnotation.objects.filter(sample__project=project).exclude(label="")
            final_labels_refresh_many(sample_ids=sorted(set(answered.values_list("sample_id", flat=True))))
    settings.refresh_from_db()
    return settings
