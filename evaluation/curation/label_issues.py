"""Label refinement, Django side: load a project's labelled samples and their embeddings, run the student
model (evaluation.curation.student), and send likely label errors to the review queue. The FreeAL refine
loop (annotation.labelling.refine) reads the same pass through project_refinement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from annotation.models import TaskKind
from annotation.review.queue import review_tasks_create
from evaluation.curation.student import RefinementResult, refine_labels, tfidf_features
from synthstudio.embeddings import embed_texts
from synthstudio.models import FinalSource, Project, Sample

HUMAN_SOURCES = (FinalSource.HUMAN, FinalSource.ADJUDICATED)
MAX_STORED_ISSUES = 1000


@dataclass(frozen=True)
class ProjectRefinement:
    """A refinement pass over a project's labelled samples, row by row (rows: (id, text, label, source))."""

    rows: list[tuple[int, str, str, str]]
    label_names: list[str]
    features: np.ndarray  # sentence embeddings, one per row
    labels: np.ndarray  # index into label_names, one per row
    human_verified: np.ndarray
    result: RefinementResult


def project_refinement(
    *, project: Project, progress: Callable[[str], None] | None = None
) -> ProjectRefinement | str:
    """Train the student on the project's final labels (FreeAL split + label issues); a message instead when
    there is too little to train on."""
    report = progress or (lambda message: None)
    rows = list(
        Sample.objects.filter(project=project)
        .exclude(final_label="")
        .order_by("id")
        .values_list("id", "text", "final_label", "final_source")
    )
    codebook = project.codebook
    label_names = codebook.label_names if codebook else []
    for _, _, label, _ in rows:  # labels outside the codebook (imported, older versions) still count
        if label not in label_names:
            label_names.append(label)
    if len(rows) < 4 or len({row[2] for row in rows}) < 2:
        return "Too few labelled samples (or only one label) to train a student model."
    report(f"Embedding {len(rows)} samples")
    features = embed_texts([text for _, text, _, _ in rows])
    index_of = {name: i for i, name in enumerate(label_names)}
    labels = np.array([index_of[label] for _, _, label, _ in rows])
    human_verified = np.array([source in HUMAN_SOURCES for _, _, _, source in rows])
    report("Training the student model")
    result = refine_labels(
        features,
        labels,
        human_verified,
        n_classes=len(label_names),
        text_features=tfidf_features([text for _, text, _, _ in rows]),
    )
    return ProjectRefinement(rows, label_names, features, labels, human_verified, result)


def label_issues_compute(*, project: Project, progress: Callable[[str], None] | None = None) -> dict:
    """Run the refinement pass over the project's labelled samples; returns a JSON-ready summary with the
    ranked issues ({sample_id, text, given, suggested, self_confidence, margin}), most likely first."""
    refinement = project_refinement(project=project, progress=progress)
    if isinstance(refinement, str):
        codebook = project.codebook
        items = Sample.objects.filter(project=project).exclude(final_label="").count()
        labels = codebook.label_names if codebook else []
        empty = {"items": items, "labels": labels, "issues": [], "clean": 0, "noisy": 0, "trusted": 0}
        return {**empty, "message": refinement}
    rows, label_names, result = refinement.rows, refinement.label_names, refinement.result
    summary: dict = {"items": len(rows), "labels": label_names}
    summary.update(
        clean=int(result.split.clean.sum()),
        noisy=int((~result.split.clean).sum()),
        trusted=int(result.trusted.sum()),
        issue_count=len(result.issues),
        issues=[
            {
                "sample_id": rows[issue.index][0],
                "text": rows[issue.index][1][:300],
                "given": label_names[issue.given],
                "suggested": label_names[issue.suggested],
                "self_confidence": round(issue.self_confidence, 4),
                "margin": round(issue.margin, 4),
            }
            for issue in result.issues[:MAX_STORED_ISSUES]
        ],
    )
    return summary


def label_issues_send_to_review(*, project: Project, issues: list[dict], sample_ids: list[int]) -> int:
    """Queue the chosen label issues through the review queue (ReviewTask kind=label_issue); samples already
    waiting in an open task are left alone. Priority 1 + margin: the most confidently contradicted first."""
    by_sample = {issue["sample_id"]: issue for issue in issues}
    wanted = [sample_id for sample_id in dict.fromkeys(sample_ids) if sample_id in by_sample]
    samples = Sample.objects.filter(project=project, id__in=wanted).in_bulk()
    items = [
        (
            samples[sample_id],
            f"student model suggests {by_sample[sample_id]['suggested']} (margin {by_sample[sample_id]['margin']:.2f})",
            1.0 + float(by_sample[sample_id]["margin"]),
        )
        for sample_id in wanted
        if sample_id in samples
    ]
    with transaction.atomic():
        created = review_tasks_create(
            project=project,
            samples_with_reasons=items,
            kind=TaskKind.LABEL_ISSUE,
            strategy="confident_learning",
        )
    return len(created)
