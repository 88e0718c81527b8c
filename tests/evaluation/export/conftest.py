"""Shared by the interchange tests: a demo-like project snapshot and an empty copy of its project."""

import pytest

from annotation.review.final_labels import final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from synthstudio.models import (
    Codebook,
    HumanAnnotation,
    HumanSource,
    LabelMethod,
    LLMAnnotation,
    Membership,
    Project,
    Role,
    Sample,
)
from tests.conftest import make_user


def empty_copy(project, lead):
    """A new project with the same members and codebook labels and no samples: where a round trip lands."""
    target = Project.objects.create(name="Copy", created_by=lead)
    for membership in Membership.objects.filter(project=project):
        Membership.objects.create(project=target, user=membership.user, role=membership.role)
    codebook = Codebook.objects.create(project=target, version=1, task_description="copy")
    for label in project.codebook.labels.all():
        codebook.labels.create(name=label.name, order=label.order)
    return target


def answers_of(sample):
    """(label, annotator's username, source, seconds) of a sample's human answers, sorted."""
    return sorted(
        (row.label, row.annotator.username if row.annotator else "", row.source, row.seconds_spent)
        for row in sample.human_annotations.select_related("annotator")
    )


@pytest.fixture
def demo_like(project, lead, annotator):
    """Two annotators (one with an email), an adjudicated tie, a 1-1 disagreement, LLM labels from a named
    model with full distributions, fields, provenance and a split."""
    annotator.email = "arno@example.org"
    annotator.save()
    second = make_user("berit_annotator")
    Membership.objects.create(project=project, user=second, role=Role.ANNOTATOR)
    rows = [
        (
            "A delight from start to finish.",
            {"positive": 0.91, "negative": 0.09},
            ["positive", "positive"],
            None,
        ),
        (
            "Two hours I will never get back.",
            {"positive": 0.2, "negative": 0.8},
            ["negative", "positive"],
            None,
        ),
        (
            "The acting was superb.",
            {"positive": 0.55, "negative": 0.45},
            ["positive", "negative"],
            "negative",
        ),
        ("Mediocre at best.", {"positive": 0.3333, "negative": 0.6667}, [], None),
    ]
    for text, distribution, labels, adjudicated in rows:
        sample = Sample.objects.create(
            project=project,
            text=text,
            fields={"source": "imdb", "year": 2019},
            provenance={"run": "generation:4"},
        )
        label = max(distribution, key=distribution.get)
        LLMAnnotation.objects.create(
            sample=sample,
            label=label,
            distribution=distribution,
            confidence=distribution[label],
            method=LabelMethod.LOGPROBS,
            model_name="qwen2.5-7b-instruct",
        )
        for user, human in zip([annotator, second], labels, strict=False):
            HumanAnnotation.objects.create(sample=sample, annotator=user, label=human, seconds_spent=4.5)
        if adjudicated:
            HumanAnnotation.objects.create(
                sample=sample,
                annotator=project.created_by,
                label=adjudicated,
                source=HumanSource.ADJUDICATION,
            )
        final_label_refresh(sample=sample)
    return snapshot_create(
        project=project, user=lead, settings=FilterSettings(), split_fractions={"train": 0.5, "test": 0.5}
    )
