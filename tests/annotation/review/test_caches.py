"""The caches of the answer path (codebook labels and panel per version, gold rate) never show stale data."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Assignment, AssignmentStatus, TaskKind
from annotation.review.queue import (
    DEFAULT_GOLD_RATE,
    review_gold_rate,
    review_gold_rate_set,
    review_next,
    review_tasks_create,
)
from synthstudio.models import HumanAnnotation
from synthstudio.services import codebook_create_version

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def routed(project, samples):
    review_gold_rate_set(project=project, gold_rate=0.0)
    return review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test", float(-index)) for index, sample in enumerate(samples)],
        kind=TaskKind.ROUTED,
    )


def queue_url(project) -> str:
    return reverse("annotation:review_queue", args=[project.id])


def answer_url(project, assignment) -> str:
    return reverse("annotation:review_answer", args=[project.id, assignment.pk])


def new_codebook_version(project, lead):
    return codebook_create_version(
        project=project,
        user=lead,
        task_description="Classify the sentiment, now with a neutral class.",
        guidelines="Use **neutral** for plot summaries.",
        labels=[
            {"name": "positive", "description": "Liked it."},
            {"name": "negative", "description": "Disliked it."},
            {"name": "neutral", "description": "Neither liked nor disliked it."},
        ],
    )


def test_it_shows_the_labels_and_guidelines_of_a_new_codebook_version_at_once(
    annotator_client, lead, project, routed
):
    first = annotator_client.get(queue_url(project)).content.decode()
    assert 'value="neutral"' not in first and "reviewer" in first
    new_codebook_version(project, lead)
    second = annotator_client.get(queue_url(project)).content.decode()
    assert 'value="neutral"' in second
    assert "now with a neutral class" in second and "plot summaries" in second
    assert "Judge the" not in second


def test_it_accepts_a_label_of_the_new_codebook_version_and_refuses_a_dropped_one(
    annotator_client, annotator, lead, project, routed
):
    assignment = review_next(project=project, annotator=annotator)
    annotator_client.get(queue_url(project))  # labels of the first version are now cached
    codebook = new_codebook_version(project, lead)
    response = annotator_client.post(
        answer_url(project, assignment), {"label": "neutral", "submission_id": "a1"}, **HTMX
    )
    assert response.status_code == 200
    answer = HumanAnnotation.objects.get()
    assert (answer.label, answer.codebook_id) == ("neutral", codebook.pk)
    assert Assignment.objects.get(pk=assignment.pk).status == AssignmentStatus.ANSWERED


def test_it_refuses_a_label_that_is_not_in_the_current_codebook(annotator_client, annotator, project, routed):
    assignment = review_next(project=project, annotator=annotator)
    response = annotator_client.post(
        answer_url(project, assignment), {"label": "neutral", "submission_id": "a1"}, **HTMX
    )
    assert "is not a label of the codebook" in response.content.decode()
    assert not HumanAnnotation.objects.exists()
    assert Assignment.objects.get(pk=assignment.pk).status == AssignmentStatus.RESERVED


def test_it_reads_a_changed_gold_rate_at_once_after_it_was_cached(project):
    assert review_gold_rate(project) == DEFAULT_GOLD_RATE
    review_gold_rate_set(project=project, gold_rate=0.5)
    assert review_gold_rate(project) == 0.5
    review_gold_rate_set(project=project, gold_rate=0.0)
    assert review_gold_rate(project) == 0.0


@pytest.mark.parametrize(
    "client_name, status", [("lead_client", 200), ("annotator_client", 200), ("outsider_client", 404)]
)
def test_it_serves_the_cached_workbench_only_to_members(request, project, routed, client_name, status):
    client: Client = request.getfixturevalue(client_name)
    url = queue_url(project) + (
        "?myself=1" if client_name == "lead_client" else ""
    )  # a lead opts in to review
    client.get(url)  # fill the caches as whoever asks first
    response = client.get(url)
    assert response.status_code == status
    assert ("reviewer" in response.content.decode()) == (status == 200)
