"""The demo routes offline-generated samples to the review queue: the workbench must say they are offline."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import ReviewTask, TaskKind
from synthstudio.models import Origin, Sample, text_hash

TEXT = "Is it the difference back?"


@pytest.fixture
def routed_generated_sample(project):
    sample = Sample.objects.create(
        project=project, text=TEXT, text_hash=text_hash(TEXT), origin=Origin.GENERATED,
        provenance={"generator": "offline-markov", "offline": True, "conditions": {"tone": "terse"}},
    )  # fmt: skip
    ReviewTask.objects.create(project=project, sample=sample, kind=TaskKind.ROUTED, required_answers=2)
    return sample


@pytest.mark.parametrize("client_name", ["lead_client", "annotator_client"])
def test_the_review_workbench_marks_an_offline_generated_item_as_offline(
    request, project, routed_generated_sample, client_name
):
    # a lead reviews items only on purpose (?myself=1); the nav's Review reserves nothing for them
    query = "?myself=1" if client_name == "lead_client" else ""
    response = request.getfixturevalue(client_name).get(
        reverse("annotation:review_queue", args=[project.pk]) + query
    )

    assert response.status_code == 200
    assert TEXT in response.content.decode()
    assert (
        '<span class="badge offline" title="Written by the offline generator, not an LLM.">offline</span>'
        in response.content.decode()
    )


def test_the_review_workbench_does_not_mark_an_llm_generated_item_as_offline(
    project, routed_generated_sample, annotator_client
):
    routed_generated_sample.provenance = {"generator": "llm", "conditions": {"tone": "terse"}}
    routed_generated_sample.save(update_fields=["provenance"])

    response = annotator_client.get(reverse("annotation:review_queue", args=[project.pk]))

    assert (
        TEXT in response.content.decode()
        and "Written by the offline generator" not in response.content.decode()
    )


def test_an_outsider_cannot_see_the_review_workbench(project, routed_generated_sample, outsider_client):
    assert outsider_client.get(reverse("annotation:review_queue", args=[project.pk])).status_code == 404
