"""The student model of label refinement, under its old name: the pure core moved down to
synthstudio.student, because generation (automatic rounds) and annotation (the FreeAL refine run) use it too
and a lower app may not import this one (ARCHITECTURE.md, dependency direction)."""

from synthstudio.student import (
    CLEAN_POSTERIOR,
    EMBEDDING_C,
    FOLDS,
    ISSUE_FILTER,
    MIN_MARGIN,
    TFIDF_C,
    CleanNoisySplit,
    LabelIssue,
    RefinementResult,
    class_medoids,
    ensemble_probabilities,
    find_label_issues,
    freeal_split,
    precision_at,
    refine_labels,
    student_probabilities,
    tfidf_features,
)

__all__ = [
    "CLEAN_POSTERIOR",
    "EMBEDDING_C",
    "FOLDS",
    "ISSUE_FILTER",
    "MIN_MARGIN",
    "TFIDF_C",
    "CleanNoisySplit",
    "LabelIssue",
    "RefinementResult",
    "class_medoids",
    "ensemble_probabilities",
    "find_label_issues",
    "freeal_split",
    "precision_at",
    "refine_labels",
    "student_probabilities",
    "tfidf_features",
]
