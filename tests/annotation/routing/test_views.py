"""The routing policy page: only a plain form submit saves or routes; the htmx live preview never does, whatever
button name it carries; the message counts what was routed, in words that agree with the number."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import ReviewTask, RoutingPolicy
from synthstudio.models import LabelMethod, Sample


def policy_form(**overrides) -> dict:
    data = {
        "budget_kind": "count",
        "budget_count": 4,
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


@pytest.fixture
def labelled(project):
    samples = [Sample.objects.create(project=project, text=f"review {i}") for i in range(6)]
    llm_annotations_record(
        samples=samples,
        readings=[
            LabelReading("positive", {"positive": p, "negative": 1 - p}, True, confidence=p)
            for p in (0.95, 0.55, 0.8, 0.6, 0.99, 0.7)
        ],
        codebook=project.codebook,
        method=LabelMethod.OFFLINE,
        model_name="offline",
        run_ref="t",
    )
    return samples


def test_an_htmx_preview_carrying_the_route_now_button_neither_saves_nor_routes(
    lead_client, project, labelled
):
    url = reverse("annotation:routing_policy", args=[project.id])
    response = lead_client.post(
        url, {**policy_form(strategy="margin"), "route_now": "1"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and 'id="routing-preview"' in response.content.decode()
    assert not ReviewTask.objects.filter(project=project).exists()
    assert RoutingPolicy.objects.get(project=project).strategy == "entropy"  # unsaved


def test_an_htmx_preview_carrying_the_save_button_does_not_save(lead_client, project, labelled):
    url = reverse("annotation:routing_policy", args=[project.id])
    lead_client.post(url, {**policy_form(strategy="margin"), "save": "1"}, HTTP_HX_REQUEST="true")
    assert RoutingPolicy.objects.get(project=project).strategy == "entropy"


def test_route_now_routes_one_batch_and_says_how_many_items(lead_client, project, labelled):
    url = reverse("annotation:routing_policy", args=[project.id])
    response = lead_client.post(url, {**policy_form(batch_size=2), "route_now": "1"}, follow=True)
    assert ReviewTask.objects.filter(project=project).count() == 2
    assert "Policy saved; routed 2 items to the review queue." in response.content.decode()


def test_routing_one_item_says_item_not_items(lead_client, project, labelled):
    url = reverse("annotation:routing_policy", args=[project.id])
    response = lead_client.post(url, {**policy_form(batch_size=1), "route_now": "1"}, follow=True)
    content = response.content.decode()
    assert ReviewTask.objects.filter(project=project).count() == 1
    assert "routed 1 item to the review queue" in content and "routed 1 items" not in content


def test_routing_with_the_budget_spent_says_nothing_was_routed(lead_client, project, labelled):
    url = reverse("annotation:routing_policy", args=[project.id])
    form = {**policy_form(budget_count=2, batch_size=2), "route_now": "1"}
    lead_client.post(url, form)
    response = lead_client.post(url, form, follow=True)
    assert ReviewTask.objects.filter(project=project).count() == 2
    assert "nothing routed: the budget is spent" in response.content.decode()
