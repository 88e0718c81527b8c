"""The outputs viewer's condition filter: `name=value` equality on a condition the project's configs use;
lookups, `__` paths and unknown names are ignored with a visible note, never a 500 and never a query."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.conditions import condition_filter_parse
from generation.prompts import DEFAULT_TEMPLATE
from generation.services.configs import config_create_version
from generation.services.runs import run_execute, run_start

pytestmark = pytest.mark.django_db

IGNORED = [
    "topic__regex=^p",
    "topic__isnull=True",
    "topic__contains=pl",
    "topic__in=plot",
    "contains=plot",  # a name that is also a JSONField lookup
    "has_key=topic",
    "nosuch=plot",
    "topic",
    "=plot",
    "topic=",
]


@pytest.fixture
def finished_run(project, lead, samples):
    config = config_create_version(
        project=project,
        user=lead,
        name="reviews",
        values={
            "template": DEFAULT_TEMPLATE,
            "dimensions": [{"name": "topic", "values": ["plot", "acting"]}],
            "target_count": 6,
        },
    )
    run = run_start(config=config, user=lead, enqueue_task=False)
    return run_execute(run_id=run.pk)


@pytest.mark.parametrize("condition", IGNORED)
def test_anything_but_equality_on_a_known_condition_is_ignored_with_a_note(
    lead_client, project, finished_run, condition
):
    url = reverse("generation:outputs", args=[project.id])
    everything = lead_client.get(url).context["total"]
    response = lead_client.get(url, {"condition": condition}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.context["total"] == everything == 6  # no lookup reached the query
    assert 'id="condition-ignored"' in response.content.decode()


def test_equality_on_a_known_condition_still_filters(lead_client, project, finished_run):
    url = reverse("generation:outputs", args=[project.id])
    response = lead_client.get(url, {"condition": "topic=plot"}, HTTP_HX_REQUEST="true")
    topics = {item.conditions["topic"] for item in response.context["page"]}
    assert topics == {"plot"} and 0 < response.context["total"] < 6
    assert 'id="condition-ignored"' not in response.content.decode()
    label = finished_run.items.first().conditions["label"]  # condition_on_label: 'label' is a condition too
    by_label = lead_client.get(url, {"condition": f"label={label}"}).context["page"]
    assert {item.conditions["label"] for item in by_label} == {label}


def test_a_run_filter_that_is_not_an_ascii_number_is_ignored(lead_client, project, finished_run):
    response = lead_client.get(reverse("generation:outputs", args=[project.id]), {"run": "²"})
    assert response.status_code == 200 and response.context["total"] == 6


def test_the_parser_takes_only_known_plain_names():
    known = {"topic", "label"}
    assert condition_filter_parse("topic=a=b", known).name == "topic"
    assert condition_filter_parse("topic=a=b", known).value == "a=b"
    assert not condition_filter_parse("", known).applies and not condition_filter_parse("", known).ignored
    assert (
        "No condition is named “tone” (these runs have: label, topic)"
        in condition_filter_parse("tone=x", known).ignored
    )
    assert "not a condition name" in condition_filter_parse("topic__regex=x", known).ignored
