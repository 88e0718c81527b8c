"""Label refinement, Django side: load a project's labelled samples and their embeddings, run the student
model (annotation.refinement), and send likely label errors to the review queue."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.db import transaction

from annotation.models import TaskKind
from annotation.review.queue import review_tasks_create
from evaluation.curation.student import refine_labels, tfidf_features
from synthstudio.embeddings import embed_texts
from synthstudio.models import FinalSource, Project, Sample

HUMAN_SOURCES = (FinalSource.HUMAN, FinalSource.ADJUDICATED)
MAX_STORED_ISSUES = 1000


def label_issues_compute(*, project: Project, progress: Callable[[str], None] | None = None) -> dict:
    """Run the refinement pass over the project's labelled samples; returns a JSON-ready summary with the
    ranked issues ({sample_id, text, given, suggested, self_confidence, margin}), most likely first."""
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
    summary = {"items": len(rows), "labels": label_names, "issues": [], "clean": 0, "noisy": 0, "trusted": 0}
    if len(rows) < 4 or len({row[2] for row in rows}) < 2:
        summary["message"] = "Too few labelled samples (or only one label) to train a student model."
        return summary
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
