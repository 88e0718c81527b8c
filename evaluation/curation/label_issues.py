"""Label refinement, Django side: the student pass over a project's labelled samples
(annotation.labelling.student_pass.project_refinement, which the FreeAL refine run reads too), its summary for
the label-issues page, and sending likely label errors to the review queue."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from annotation.labelling.student_pass import (  # noqa: F401 - ProjectRefinement: its old import path
    ProjectRefinement,
    project_refinement,
)
from annotation.models import TaskKind
from annotation.review.queue import review_tasks_create
from synthstudio.models import Project, Sample

MAX_STORED_ISSUES = 1000


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
