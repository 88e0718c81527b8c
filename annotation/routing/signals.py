"""Routing signals of a project's samples, as services: a signals run embeds every sample (cached per model
and text) and stores its uncertainty, student and neighbour signals in SampleSignals, which routing and the
labelling charts read. (Not Django signals: the numbers that say how far to trust an LLM label; the pure
computation is annotation.routing.sample_signals.)

`signals_run_start` → `annotation.tasks.signals_run_task` → `signals_refresh`; `signals_run_after_new_labels`
queues it by itself after a labelling run or an import (synthstudio's samples_imported, in the worker). `project_labels` is the one
read of a project's current LLM labels as a probability matrix, shared with routing's planner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from annotation.models import SampleSignals, SignalsRun
from annotation.routing import sample_signals as signal_core
from annotation.tasks import signals_run_task
from synthstudio.embeddings import embed_texts
from synthstudio.jobs import enqueue
from synthstudio.models import HUMAN_VERIFIED_SOURCES, JobStatus, LabelMethod, LLMAnnotation, Project, Sample
from synthstudio.vectors import cosine_knn

EMBED_BATCH = 256  # texts per embedding batch of a signals run


def signals_run_start(*, project: Project, user: AbstractBaseUser | None = None) -> SignalsRun:
    run = SignalsRun.objects.create(project=project, created_by=user)
    enqueue(signals_run_task, run.pk)
    return run


def signals_run_after_new_labels(
    *, project: Project, user: AbstractBaseUser | None = None
) -> SignalsRun | None:
    """The signals run that follows new samples or LLM labels (a finished labelling run or import), so the
    charts and routing never wait for a button: none while the project has no current LLM label (signals
    measure how far to trust one), and no second one while a run is still queued (it reads the rows when it
    starts, the new ones included)."""
    if not LLMAnnotation.objects.filter(sample__project=project, is_current=True).exists():
        return None
    queued = SignalsRun.objects.filter(project=project, status=JobStatus.QUEUED).order_by("-pk").first()
    return queued or signals_run_start(project=project, user=user)


def signals_run_after_import(sender, *, job, **kwargs) -> None:
    """Receiver of synthstudio.services.samples_imported (connected in annotation.apps)."""
    signals_run_after_new_labels(project=job.project, user=job.created_by)


@dataclass(frozen=True)
class SignalsProgress:
    """Where a project's routing signals stand, for the pages that say what to do next."""

    labelled: int  # samples with a current LLM label
    without_signals: int  # samples no signals run has covered yet
    latest_run: SignalsRun | None

    @property
    def computing(self) -> bool:
        return self.latest_run is not None and self.latest_run.status in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def missing(self) -> int:
        """Samples still without signals while nothing computes them (0 without LLM labels: nothing to do)."""
        return self.without_signals if self.labelled and not self.computing else 0


def signals_progress(*, project: Project) -> SignalsProgress:
    return SignalsProgress(
        labelled=LLMAnnotation.objects.filter(sample__project=project, is_current=True).count(),
        without_signals=Sample.objects.filter(project=project, signals__isnull=True).count(),
        latest_run=SignalsRun.objects.filter(project=project).order_by("-created_at", "-pk").first(),
    )


@dataclass
class ProjectLabels:
    """A project's samples with their current LLM distributions, aligned row by row."""

    samples: list[Sample]
    label_names: list[str]
    probs: np.ndarray  # (n, L)
    llm_labels: list[str]
    valid: np.ndarray  # bool (n,)
    offline: np.ndarray  # bool (n,): the current label came from the offline labeller
    embeddings: np.ndarray | None = None

    @cached_property
    def verified(self) -> np.ndarray:
        """bool (n,): the items whose final label a human gave or settled (HUMAN_VERIFIED_SOURCES)."""
        return np.array([s.final_source in HUMAN_VERIFIED_SOURCES for s in self.samples], dtype=bool)


def project_labels(*, project: Project, with_embeddings: bool = False) -> ProjectLabels:
    """Every sample of the project with its current LLM annotation as a probability row (uniform where the
    LLM named no valid label). Two queries, no per-row ones."""
    codebook = project.codebook
    names = codebook.label_names if codebook else []
    samples = list(
        Sample.objects.filter(project=project)
        .order_by("id")
        .only("id", "text", "final_label", "final_source")
    )
    current = {
        a.sample_id: a
        for a in LLMAnnotation.objects.filter(sample__project=project, is_current=True).only(
            "sample_id", "label", "distribution", "confidence", "valid", "method"
        )
    }
    probs = np.full((len(samples), max(1, len(names))), 1.0 / max(1, len(names)))
    labels, valid = [], np.zeros(len(samples), dtype=bool)
    offline = np.zeros(len(samples), dtype=bool)
    for row, sample in enumerate(samples):
        annotation = current.get(sample.pk)
        offline[row] = annotation is not None and annotation.method == LabelMethod.OFFLINE
        if annotation and annotation.valid and annotation.label in names:
            probs[row] = label_probabilities(annotation, names)
            valid[row] = True
            labels.append(annotation.label)
        else:
            labels.append("")
    embeddings = None
    if with_embeddings:
        embeddings = embed_texts([s.text for s in samples]) if samples else np.zeros((0, 0), dtype=np.float32)
    return ProjectLabels(samples, names, probs, labels, valid, offline, embeddings)


def label_probabilities(annotation: LLMAnnotation, names: Sequence[str]) -> list[float]:
    """The annotation's distribution over `names`; an imported label with only a confidence (or nothing)
    puts the confidence (default 1) on its label and shares the rest evenly."""
    if annotation.distribution and sum(float(v) for v in annotation.distribution.values()) > 0:
        return [float(annotation.distribution.get(name, 0.0)) for name in names]
    confidence = 1.0 if annotation.confidence is None else float(annotation.confidence)
    rest = (1.0 - confidence) / (len(names) - 1) if len(names) > 1 else 0.0
    return [confidence if name == annotation.label else rest for name in names]


def signals_refresh(*, project: Project, run: SignalsRun | None = None) -> int:
    """Embed every sample in batches (cached) and store its routing signals. Returns the number stored."""
    samples = list(Sample.objects.filter(project=project).order_by("id").only("id", "text"))
    if run:
        run.mark_running()
        run.report_progress(total=len(samples), done=0)
    for start in range(0, len(samples), EMBED_BATCH):
        embed_texts([s.text for s in samples[start : start + EMBED_BATCH]])
        if run:
            run.report_progress(done=min(len(samples), start + EMBED_BATCH))
    data = project_labels(project=project, with_embeddings=True)
    computed = sample_signals_compute(data)
    now = timezone.now()
    rows = [
        SampleSignals(sample_id=sample.pk, computed_at=now, **computed[i])
        for i, sample in enumerate(data.samples)
    ]
    SampleSignals.objects.bulk_create(
        rows,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["sample"],
        update_fields=[
            "llm_label",
            "least_confidence",
            "margin",
            "entropy",
            "student_probability",
            "student_label",
            "knn_agreement",
            "duplicate_of",
            "computed_at",
        ],
    )
    if run:
        run.mark_finished(JobStatus.SUCCEEDED, message=f"Signals for {len(rows)} samples.")
    return len(rows)


def sample_signals_compute(data: ProjectLabels) -> list[dict]:
    """Per sample, the SampleSignals field values, from the selection engineer's signals core. Items without a
    valid LLM label get no uncertainty/student/neighbour values (the student trains on valid labels only)."""
    n = len(data.samples)
    uncertainty = signal_core.uncertainty_signals(data.probs)
    student_probability = np.full(n, np.nan)
    knn_agreement = np.full(n, np.nan)
    student_label = [""] * n
    valid_rows = np.flatnonzero(data.valid)
    if len(valid_rows) and data.embeddings is not None:
        labels = [data.llm_labels[i] for i in valid_rows]
        vectors = data.embeddings[valid_rows]
        oof, classes = signal_core.student_oof_probabilities(vectors, labels)
        codes, _ = signal_core.encode_labels(labels)
        student_probability[valid_rows] = oof[np.arange(len(codes)), codes]
        for row, best in zip(valid_rows, oof.argmax(axis=1), strict=True):
            student_label[row] = str(classes[best])
        neighbours, _ = cosine_knn(vectors, signal_core.KNN_AGREEMENT_K)
        knn_agreement[valid_rows] = signal_core.knn_label_agreement(vectors, labels, neighbours=neighbours)
    duplicate_of = signal_core.exact_duplicate_of([s.text for s in data.samples])
    if data.embeddings is not None and n > 1:
        near = signal_core.near_duplicates(data.embeddings).partner
        duplicate_of = np.where(duplicate_of >= 0, duplicate_of, np.where(near < np.arange(n), near, -1))
    return [
        {
            "llm_label": data.llm_labels[i],
            "least_confidence": _value(uncertainty["least_confidence"], i, data.valid),
            "margin": _value(uncertainty["margin"], i, data.valid),
            "entropy": _value(uncertainty["entropy"], i, data.valid),
            "student_probability": _value(student_probability, i, data.valid),
            "student_label": student_label[i],
            "knn_agreement": _value(knn_agreement, i, data.valid),
            "duplicate_of_id": data.samples[int(duplicate_of[i])].pk if duplicate_of[i] >= 0 else None,
        }
        for i in range(n)
    ]


def _value(values: np.ndarray | None, index: int, valid: np.ndarray) -> float | None:
    if values is None or not valid[index]:
        return None
    value = float(values[index])
    return value if np.isfinite(value) else None
