"""One pass of the student model over a project's labelled samples (Django side of synthstudio.student):
load the samples with a final label and their embeddings, train the student, split the LLM-labelled items
clean/noisy (FreeAL) and rank likely label errors (confident learning).

It lives in annotation because the FreeAL refine run (annotation.labelling.refine) and the label-issues page
(evaluation.curation.label_issues) both read it, and a lower app may not import a higher one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from synthstudio.embeddings import embed_texts
from synthstudio.models import HUMAN_VERIFIED_SOURCES, Project, Sample
from synthstudio.student import RefinementResult, refine_labels, tfidf_features


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
    human_verified = np.array([source in HUMAN_VERIFIED_SOURCES for _, _, _, source in rows])
    report("Training the student model")
    result = refine_labels(
        features,
        labels,
        human_verified,
        n_classes=len(label_names),
        text_features=tfidf_features([text for _, text, _, _ in rows]),
    )
    return ProjectRefinement(rows, label_names, features, labels, human_verified, result)
