"""Labelling, routing and evaluation say what to do next when a step is missing, and an empty chart says "No
data yet" instead of drawing an empty frame."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import RoutingPolicy, SignalsRun
from annotation.routing.signals import signals_refresh
from evaluation.dashboards import charts
from evaluation.dashboards.services import metrics_refresh_start
from synthstudio.models import JobStatus, LabelMethod, LLMAnnotation


def label_all(samples, *, distribution: bool = True) -> None:
    for sample in samples:
        LLMAnnotation.objects.create(
            sample=sample,
            label="positive",
            distribution={"positive": 0.8, "negative": 0.2} if distribution else {},
            confidence=0.8,
            method=LabelMethod.IMPORTED,
        )


def page(client, project, name: str) -> str:
    return " ".join(client.get(reverse(f"annotation:{name}", args=[project.id])).content.decode().split())


def test_without_llm_labels_both_pages_say_to_label_first(lead_client, project, samples):
    assert "No LLM labels yet — start a labelling run below" in page(
        lead_client, project, "labelling_overview"
    )
    routing = page(lead_client, project, "routing_policy")
    assert "No LLM labels yet —" in routing and "label the samples</a> first" in routing


def test_without_signals_the_charts_say_no_data_yet(lead_client, project, samples):
    label_all(samples)
    content = page(lead_client, project, "labelling_overview")
    assert content.count("No data yet: the chart fills once the samples") == 2
    assert "<svg" not in content.split('id="labelling-summary"')[1].split("Start a labelling run")[0]
    assert "4 samples have no signals yet — compute them with the button below." in content


def test_while_signals_are_queued_the_pages_say_so_and_labelling_polls(lead_client, project, samples):
    label_all(samples)
    SignalsRun.objects.create(project=project, status=JobStatus.QUEUED)
    labelling = page(lead_client, project, "labelling_overview")
    assert "Signals are being computed… the charts and routing fill in" in labelling
    assert 'hx-trigger="every 3s"' in labelling
    assert "Signals are being computed…" in page(lead_client, project, "routing_policy")


def test_with_signals_and_no_saved_policy_the_pages_point_to_routing(lead_client, lead, project, samples):
    label_all(samples)
    signals_refresh(project=project)
    labelling = page(lead_client, project, "labelling_overview")
    assert "Next: no routing policy yet —" in labelling and 'hx-trigger="every 3s"' not in labelling
    assert "No routing policy yet — set one below and save it." in page(
        lead_client, project, "routing_policy"
    )

    RoutingPolicy.objects.update_or_create(project=project, defaults={"updated_by": lead})
    assert 'id="next-step"' not in page(lead_client, project, "labelling_overview")
    assert 'id="next-step"' not in page(lead_client, project, "routing_policy")


def test_a_histogram_of_no_values_is_an_empty_chart():
    assert charts.histogram([0.0, 0.5, 1.0], [0, 0], title="Entropy").is_empty
    assert not charts.histogram([0.0, 0.5, 1.0], [0, 1], title="Entropy").is_empty


@pytest.mark.django_db
def test_the_evaluation_entropy_chart_says_no_data_yet_without_distributions(
    lead_client, project, samples, django_capture_on_commit_callbacks
):
    label_all(samples, distribution=False)  # labels with a confidence and no distribution: no entropy
    with django_capture_on_commit_callbacks(execute=True):
        metrics_refresh_start(project=project)
    body = lead_client.get(f"/projects/{project.id}/evaluation/").content.decode()
    entropy = body.split("Entropy of the label distribution")[1].split("</figure>")[0]
    assert '<p class="empty">No data yet.</p>' in entropy and "<svg" not in entropy
    confidence = body.split("LLM confidence")[1].split("</figure>")[0]
    assert "<svg" in confidence


def test_the_overview_and_labelling_count_the_same_llm_labelled_samples(lead_client, project, samples):
    """Once a human verified a sample, its final label is no longer the LLM's; both pages still count it."""
    from annotation.review.final_labels import final_label_refresh
    from synthstudio.models import FinalSource, HumanAnnotation, HumanSource

    label_all(samples)
    LLMAnnotation.objects.filter(sample=samples[3]).update(valid=False, label="")
    HumanAnnotation.objects.create(sample=samples[0], label="negative", source=HumanSource.IMPORTED)
    for sample in samples:
        final_label_refresh(sample=sample)
    samples[0].refresh_from_db()
    assert samples[0].final_source != FinalSource.LLM

    def shown(url: str) -> str:
        body = lead_client.get(url).content.decode()
        return body.split('id="llm-labelled">')[1].split("<")[0]

    overview = shown(reverse("project_detail", args=[project.id]))
    labelling = shown(reverse("annotation:labelling_overview", args=[project.id]))
    assert overview == labelling == "4"
