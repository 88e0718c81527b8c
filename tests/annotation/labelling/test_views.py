"""Lead pages of labelling and routing, as lead, annotator (403) and outsider (404), full page and htmx."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import LabellingRun, ReviewTask, RoutingPolicy, SignalsRun
from annotation.routing.signals import signals_refresh
from synthstudio.models import JobStatus, LabelMethod


def urls(project, run=None, signals=None) -> list[str]:
    names = [
        reverse("annotation:labelling_overview", args=[project.id]),
        reverse("annotation:routing_policy", args=[project.id]),
        reverse("annotation:routed_items", args=[project.id]),
    ]
    if run:
        names.append(reverse("annotation:labelling_run_detail", args=[project.id, run.pk]))
    if signals:
        names.append(reverse("annotation:signals_run_progress", args=[project.id, signals.pk]))
    return names


@pytest.fixture
def labelled(project, samples):
    readings = [
        LabelReading("positive", {"positive": 0.9, "negative": 0.1}, True, confidence=0.9),
        LabelReading("negative", {"positive": 0.4, "negative": 0.6}, True, confidence=0.6),
        LabelReading("positive", {"positive": 0.55, "negative": 0.45}, True, confidence=0.55),
        LabelReading("", {}, False),
    ]
    llm_annotations_record(
        samples=samples,
        readings=readings,
        codebook=project.codebook,
        method=LabelMethod.OFFLINE,
        model_name="offline",
        run_ref="labelling:0",
    )
    return samples


@pytest.fixture
def runs(project, lead):
    run = LabellingRun.objects.create(
        project=project, created_by=lead, codebook=project.codebook, method=LabelMethod.OFFLINE
    )
    signals = SignalsRun.objects.create(project=project, created_by=lead)
    return run, signals


def test_leads_see_every_page(lead_client, project, labelled, runs):
    for url in urls(project, *runs):
        response = lead_client.get(url)
        assert response.status_code == 200, url
        assert b"<html" in response.content  # a full page


def test_annotators_are_refused_every_page(annotator_client, project, runs):
    for url in urls(project, *runs):
        assert annotator_client.get(url).status_code == 403, url
    post = reverse("annotation:labelling_run_start", args=[project.id])
    assert annotator_client.post(post, {"method": "logprobs"}).status_code == 403
    run, _ = runs
    for name in ("labelling_run_resume", "labelling_run_cancel"):
        assert (
            annotator_client.post(reverse(f"annotation:{name}", args=[project.id, run.pk])).status_code == 403
        )
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED


def test_outsiders_get_not_found_everywhere(outsider_client, project, runs):
    for url in urls(project, *runs):
        assert outsider_client.get(url).status_code == 404, url
    assert (
        outsider_client.post(reverse("annotation:routing_policy", args=[project.id]), {}).status_code == 404
    )
    run, _ = runs
    assert (
        outsider_client.post(
            reverse("annotation:labelling_run_resume", args=[project.id, run.pk])
        ).status_code
        == 404
    )


def test_the_overview_counts_labels_charts_uncertainty_and_marks_offline(lead_client, project, labelled):
    signals_refresh(project=project)
    response = lead_client.get(reverse("annotation:labelling_overview", args=[project.id]))
    content = response.content.decode()
    assert "<svg" in content and "Entropy of the label distribution" in content
    assert "offline" in content and "4 current labels come from the offline labeller" in content
    assert response.context["totals"] == {"labelled": 4, "invalid": 1, "offline": 4}
    assert {row["label"]: row["count"] for row in response.context["label_counts"]} == {
        "positive": 2,
        "negative": 1,
    }
    assert response.context["charts"][0].total == 3


def test_the_overview_htmx_fragment_is_only_the_summary(lead_client, project, labelled):
    response = lead_client.get(
        reverse("annotation:labelling_overview", args=[project.id]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert b'id="labelling-summary"' in response.content and b"<html" not in response.content


def test_starting_a_run_without_an_endpoint_runs_offline(
    lead_client, project, samples, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("annotation:labelling_run_start", args=[project.id]),
            {
                "method": "logprobs",
                "samples_per_item": 5,
                "temperature": 0.7,
                "demo_count": 0,
                "only_unlabelled": "on",
            },
        )
    run = LabellingRun.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/labelling/runs/{run.pk}/")
    run.refresh_from_db()
    assert run.is_offline and run.status == JobStatus.SUCCEEDED and run.done == 4
    page = lead_client.get(response.url)
    assert b"offline" in page.content
    fragment = lead_client.get(response.url, HTTP_HX_REQUEST="true")
    assert fragment.content.lstrip().startswith(b'<div class="job"') and b"<html" not in fragment.content


def test_a_bad_run_form_is_shown_again_with_errors(lead_client, project, samples):
    response = lead_client.post(
        reverse("annotation:labelling_run_start", args=[project.id]), {"method": "nonsense"}
    )
    assert response.status_code == 400 and not LabellingRun.objects.exists()


def test_cancelling_a_run_keeps_what_finished(lead_client, project, runs):
    run, _ = runs
    response = lead_client.post(reverse("annotation:labelling_run_cancel", args=[project.id, run.pk]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == JobStatus.CANCELLED


def policy_form(**overrides) -> dict:
    data = {
        "budget_kind": "count",
        "budget_count": 2,
        "budget_share": 0.2,
        "strategy": "entropy",
        "batch_size": 2,
        "annotators_per_item": 1,
        "cold_start_size": 0,
        "cold_start_strategy": "random",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_the_routing_preview_shows_reasons_without_saving(lead_client, project, labelled):
    url = reverse("annotation:routing_policy", args=[project.id])
    response = lead_client.post(url, policy_form(strategy="least_confidence"), HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert response.status_code == 200 and 'id="routing-preview"' in content and "<html" not in content
    assert "no valid LLM label" in content and "least confidence 0.45" in content
    assert not ReviewTask.objects.exists()
    assert RoutingPolicy.objects.get(project=project).strategy == "entropy"  # the default, unchanged


def test_saving_the_policy_and_routing_now_creates_review_tasks(lead_client, lead, project, labelled):
    url = reverse("annotation:routing_policy", args=[project.id])
    response = lead_client.post(
        url, {**policy_form(strategy="margin", annotators_per_item=2), "route_now": "1"}
    )
    assert response.status_code == 302
    policy = RoutingPolicy.objects.get(project=project)
    assert policy.strategy == "margin" and policy.updated_by == lead
    tasks = ReviewTask.objects.filter(project=project)
    assert tasks.count() == 2 and {t.required_answers for t in tasks} == {2}
    listing = lead_client.get(reverse("annotation:routed_items", args=[project.id]))
    assert b"margin" in listing.content
    fragment = lead_client.get(reverse("annotation:routed_items", args=[project.id]), HTTP_HX_REQUEST="true")
    assert b'id="routed-table"' in fragment.content and b"<html" not in fragment.content


def test_an_invalid_policy_is_refused(lead_client, project, labelled):
    url = reverse("annotation:routing_policy", args=[project.id])
    response = lead_client.post(url, {**policy_form(budget_share=1.5, budget_kind="share"), "save": "1"})
    assert response.status_code == 400
    assert not RoutingPolicy.objects.filter(project=project, budget_share=1.5).exists()


def test_starting_signals_redirects_to_their_progress(
    lead_client, project, labelled, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(reverse("annotation:signals_run_start", args=[project.id]))
    run = SignalsRun.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/labelling/signals/{run.pk}/")
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED
    fragment = lead_client.get(response.url, HTTP_HX_REQUEST="true")
    assert fragment.content.lstrip().startswith(b'<div class="job"')


def test_the_nav_links_show_for_leads_only(lead, annotator, project):
    overview = reverse("project_detail", args=[project.id])
    labelling = reverse("annotation:labelling_overview", args=[project.id]).encode()
    as_lead, as_annotator = Client(), Client()
    as_lead.force_login(lead)
    as_annotator.force_login(annotator)
    assert labelling in as_lead.get(overview).content
    assert labelling not in as_annotator.get(overview).content


def test_logprobs_are_refused_for_an_endpoint_that_does_not_return_them(lead_client, project, samples):
    from generation.models import LLMEndpoint

    endpoint = LLMEndpoint.objects.create(
        project=project,
        name="no logprobs",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        supports_logprobs=False,
    )
    response = lead_client.post(
        reverse("annotation:labelling_run_start", args=[project.id]),
        {
            "endpoint": endpoint.pk,
            "method": "logprobs",
            "samples_per_item": 5,
            "temperature": 0.7,
            "demo_count": 0,
        },
    )
    assert response.status_code == 400 and b"returns no logprobs" in response.content
    assert not LabellingRun.objects.exists()


def test_resuming_a_run_sends_it_to_a_worker_again(
    lead_client, project, samples, runs, django_capture_on_commit_callbacks
):
    run, _ = runs
    url = reverse("annotation:labelling_run_resume", args=[project.id, run.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(url)
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.done == 4  # the eager "worker" finished it


@pytest.mark.parametrize(
    "name, data",
    [
        ("annotation:labelling_run_start", {"method": "offline", "samples_per_item": 1, "temperature": 0}),
        ("annotation:refine_run_start", {"method": "offline", "max_passes": 2, "demos_per_class": 2}),
    ],
)
def test_a_run_without_a_codebook_is_refused_on_the_labelling_page_with_both_forms(
    lead_client, lead, name, data
):
    from synthstudio.models import Membership, Project, Role

    bare = Project.objects.create(name="No codebook yet", created_by=lead)
    Membership.objects.create(project=bare, user=lead, role=Role.LEAD)
    response = lead_client.post(reverse(name, args=[bare.id]), data)
    assert response.status_code == 400
    assert "Write the codebook first" in response.content.decode()
    assert {"form", "refine_form"} <= set(response.context.keys())
    assert not LabellingRun.objects.filter(project=bare).exists()
