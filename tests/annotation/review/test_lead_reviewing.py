"""A lead who opens Review (the nav link) reserves nothing; reviewing items themselves is an explicit choice,
the item they then hold is shown as theirs with a button that releases it, and the queue overview lists it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import Assignment, AssignmentStatus, TaskKind
from annotation.review.queue import review_gold_rate_set, review_next, review_tasks_create


@pytest.fixture
def routed(project, samples):
    review_gold_rate_set(project=project, gold_rate=0.0)
    return review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test", float(-index)) for index, sample in enumerate(samples)],
        kind=TaskKind.ROUTED,
        required_answers=1,
    )


def review_url(project) -> str:
    return reverse("annotation:review_queue", args=[project.id])


def test_a_lead_opening_review_reserves_nothing_and_is_offered_to_review_themselves(
    lead_client, lead, project, routed
):
    response = lead_client.get(review_url(project))
    content = response.content.decode()
    assert response.status_code == 200
    assert not Assignment.objects.filter(annotator=lead).exists()
    assert f'href="{review_url(project)}?myself=1"' in content and "Review items myself" in content
    text = " ".join(content.split())
    assert '<div class="big" id="items-waiting">4</div>items waiting for review' in text
    assert f"reserved for you for {project.reservation_minutes} minutes" in text


def test_the_htmx_request_of_a_lead_reserves_nothing_either(lead_client, lead, project, routed):
    lead_client.get(review_url(project), HTTP_HX_REQUEST="true")
    assert not Assignment.objects.filter(annotator=lead).exists()


def test_a_lead_reviewing_themselves_sees_the_item_is_held_for_them_and_can_release_it(
    lead_client, lead, project, routed
):
    content = lead_client.get(review_url(project) + "?myself=1").content.decode()
    held = Assignment.objects.get(annotator=lead, status=AssignmentStatus.RESERVED)
    release = reverse("annotation:review_release", args=[project.id, held.pk])
    assert 'id="lead-reservation"' in content and f'action="{release}"' in content

    # the nav link again: the held item is shown, no second one is reserved
    again = lead_client.get(review_url(project)).content.decode()
    assert 'id="lead-reservation"' in again and Assignment.objects.filter(annotator=lead).count() == 1

    response = lead_client.post(release, follow=True)
    assert response.redirect_chain[-1][0] == review_url(project)
    held.refresh_from_db()
    assert held.status == AssignmentStatus.RELEASED
    assert "Released: the item is back in the queue." in response.content.decode()
    assert "Review items myself" in response.content.decode()
    assert not Assignment.objects.filter(annotator=lead, status=AssignmentStatus.RESERVED).exists()


def test_the_lead_reservation_shows_in_the_queue_overview(lead_client, lead, project, routed):
    lead_client.get(review_url(project) + "?myself=1")
    overview = lead_client.get(reverse("annotation:review_overview", args=[project.id])).content.decode()
    assert 'id="reservation-table"' in overview and lead.username in overview
    assert f'href="{review_url(project)}?myself=1"' in overview


def test_an_annotator_opening_review_still_gets_an_item_without_a_lead_banner(
    annotator_client, annotator, project, routed
):
    content = annotator_client.get(review_url(project)).content.decode()
    assert Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.RESERVED).count() == 1
    assert 'id="item-text"' in content and 'id="lead-reservation"' not in content


def test_releasing_an_annotators_item_still_returns_the_lead_to_the_overview(
    lead_client, annotator, project, routed
):
    held = review_next(project=project, annotator=annotator)
    response = lead_client.post(reverse("annotation:review_release", args=[project.id, held.pk]))
    assert response.url == reverse("annotation:review_overview", args=[project.id])


def test_the_queue_overview_shows_no_gold_mix_in_without_gold_items(lead_client, project, samples, routed):
    from annotation.review.lead import gold_item_mark

    review_gold_rate_set(project=project, gold_rate=0.1)
    overview = reverse("annotation:review_overview", args=[project.id])
    card = lead_client.get(overview).content.decode().split('id="gold-card">')[1].split("</div></div>")[0]
    assert "no gold items yet" in card and "gold mix-in" not in card

    gold_item_mark(project=project, sample=samples[0], label="positive", user=None)
    card = lead_client.get(overview).content.decode().split('id="gold-card">')[1].split("</div></div>")[0]
    assert "10%" in card and "gold mix-in" in card and "no gold items yet" not in card
