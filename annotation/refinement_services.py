"""Label refinement, Django side: load a project's labelled samples and their embeddings, run the student
model (annotation.refinement), and send likely label errors to the review queue."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.db import transaction

from synthstudio.embeddings import embed_texts
from synthstudio.models import FinalSource, Project, Sample

from .models import ReviewTask, TaskKind
from .refinement import refine_labels

HUMAN_SOURCES = (FinalSource.HUMAN, FinalSource.ADJUDICATED)
MAX_STORED_ISSUES = 1000


def label_issues_compute(*, project: Project, progress: Callable[[str], None] | None = None) -> dict:
    """Run the refinement pass over the project's labelled samples; returns a JSON-ready summary with the
    ranked issues ({sample_id, text, given, suggested, self_confidence, margin}), most likely first."""
    report = progress or (lambda message: None)
    rows = list(
        Sample.objects.filter(project=project).exclude(final_label="").order_by("id").values_list(
            "id", "text", "final_label", "final_source"
        )
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
    result = refine_labels(features, labels, human_verified, n_classes=len(label_names))
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
    """Queue the chosen label issues as ReviewTasks (kind=label_issue), skipping samples with an open one.
    Priority is the issue's margin, so the most confidently contradicted labels are served first."""
    by_sample = {issue["sample_id"]: issue for issue in issues}
    wanted = [sample_id for sample_id in sample_ids if sample_id in by_sample]
    with transaction.atomic():
        already_open = set(
            ReviewTask.objects.filter(project=project, sample_id__in=wanted, is_open=True).values_list(
                "sample_id", flat=True
            )
        )
        valid = set(Sample.objects.filter(project=project, id__in=wanted).values_list("id", flat=True))
        tasks = [
            ReviewTask(
                project=project,
                sample_id=sample_id,
                kind=TaskKind.LABEL_ISSUE,
                priority=1.0 + float(by_sample[sample_id]["margin"]),
                reason=f"student model suggests {by_sample[sample_id]['suggested']} (margin {by_sample[sample_id]['margin']:.2f})"[:300],
                strategy="confident_learning",
            )
            for sample_id in dict.fromkeys(wanted)
            if sample_id in valid and sample_id not in already_open
        ]
        ReviewTask.objects.bulk_create(tasks)
    return len(tasks)
