"""Every review page as lead, annotator and outsider; the htmx workbench flow; access across projects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, GoldItem, TaskKind
from annotation.review.answers import review_answer_submit
from annotation.review.lead import gold_item_mark
from annotation.review.progress import review_progress
from annotation.review.queue import review_gold_rate, review_gold_rate_set, review_next, review_tasks_create
from synthstudio.models import HumanAnnotation, HumanSource, LLMAnnotation, Membership, Project, Role, Sample

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def routed(project, samples):
    review_gold_rate_set(project=project, gold_rate=0.0)
    return review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test", float(-index)) for index, sample in enumerate(samples)],
        kind=TaskKind.ROUTED,
        required_answers=1,
    )


def client_as(user) -> Client:
    """A separate client per user (the conftest *_client fixtures share one client)."""
    client = Client()
    client.force_login(user)
    return client


def url(name, project, *args):
    return reverse(f"annotation:{name}", args=[project.id, *args])


def reserve(project, user):
    return review_next(project=project, annotator=user)


# ------------------------------------------------------------------------------ the workbench, by role


def test_it_shows_the_annotator_the_item_with_codebook_and_suggestion(
    annotator_client, project, samples, routed
):
    LLMAnnotation.objects.create(
        sample=samples[0],
        label="positive",
        distribution={"positive": 0.9, "negative": 0.1},
        confidence=0.9,
        method="offline",
        rationale="Praise words.",
    )
    response = annotator_client.get(url("review_queue", project))
    assert response.status_code == 200
    body = response.content.decode()
    assert samples[0].text in body
    assert "Judge the <strong>reviewer&#x27;s</strong> opinion" in body or "reviewer" in body
    assert "LLM suggests" in body and "Praise words." in body and "offline" in body
    assert 'data-hotkey="1"' in body and 'data-suggested="true"' in body


def test_it_hides_the_suggestion_when_the_project_says_so(annotator_client, project, samples, routed):
    LLMAnnotation.objects.create(
        sample=samples[0], label="positive", distribution={"positive": 1.0}, confidence=1.0, method="offline"
    )
    Project.objects.filter(pk=project.pk).update(show_llm_suggestion=False)
    body = annotator_client.get(url("review_queue", project)).content.decode()
    assert "LLM suggests" not in body and "data-suggested" not in body


def test_it_asks_for_a_rating_only_where_the_project_does(annotator_client, project, samples, routed):
    assert 'name="rating"' not in annotator_client.get(url("review_queue", project)).content.decode()
    Project.objects.filter(pk=project.pk).update(ask_quality_rating=True)
    assert 'name="rating"' in annotator_client.get(url("review_queue", project)).content.decode()


def test_it_shows_the_conditions_of_a_generated_item(annotator_client, project, routed):
    sample = Sample.objects.create(
        project=project,
        text="Generated review",
        origin="generated",
        provenance={"conditions": {"genre": "noir", "length": "short"}},
    )
    review_tasks_create(project=project, samples_with_reasons=[(sample, "gen", 100.0)], kind=TaskKind.ROUTED)
    body = annotator_client.get(url("review_queue", project)).content.decode()
    assert "Generated under" in body and "noir" in body


def test_it_lets_the_lead_review_too(lead_client, project, routed):
    assert lead_client.get(url("review_queue", project)).status_code == 200


def test_it_hides_the_workbench_from_outsiders(outsider_client, project, routed):
    assert outsider_client.get(url("review_queue", project)).status_code == 404
    assert not Assignment.objects.exists()


def test_it_sends_anonymous_visitors_to_log_in(client, project, routed):
    response = client.get(url("review_queue", project))
    assert response.status_code == 302 and "/login/" in response["Location"]


# ------------------------------------------------------------------------------ answering over htmx


def answer(client, project, assignment, label="positive", **extra):
    data = {"label": label, "submission_id": f"form-{assignment.pk}", **extra}
    return client.post(url("review_answer", project, assignment.pk), data, **HTMX)


def test_it_stores_the_answer_and_renders_the_next_item_in_the_same_response(
    annotator_client, annotator, project, samples, routed
):
    first = reserve(project, annotator)
    response = answer(annotator_client, project, first, "negative", seconds_spent="3.5", comment="clear")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and 'id="workbench"' in body
    assert samples[1].text in body and "Saved" in body
    stored = HumanAnnotation.objects.get()
    assert (stored.label, stored.comment, stored.annotator_id) == ("negative", "clear", annotator.pk)


def test_it_stores_one_answer_for_a_double_submit(annotator_client, annotator, project, samples, routed):
    first = reserve(project, annotator)
    answer(annotator_client, project, first)
    again = answer(annotator_client, project, first)
    assert again.status_code == 200
    assert HumanAnnotation.objects.filter(sample=samples[0]).count() == 1


def test_it_redirects_a_plain_form_post_to_the_next_item(annotator_client, annotator, project, routed):
    first = reserve(project, annotator)
    response = annotator_client.post(url("review_answer", project, first.pk), {"label": "positive"})
    assert response.status_code == 302 and response["Location"] == url("review_queue", project)


def test_it_keeps_the_item_and_says_why_when_the_label_is_missing(
    annotator_client, annotator, project, samples, routed
):
    first = reserve(project, annotator)
    response = annotator_client.post(url("review_answer", project, first.pk), {"label": ""}, **HTMX)
    assert "Pick a label." in response.content.decode()
    assert not HumanAnnotation.objects.exists()


def test_it_records_edits_flags_and_ratings(annotator_client, annotator, project, samples, routed):
    Project.objects.filter(pk=project.pk).update(ask_quality_rating=True)
    first = reserve(project, annotator)
    answer(
        annotator_client,
        project,
        first,
        edited_text="A delight, start to end.",
        flag="unfaithful",
        flag_note="not a review",
        rating="B",
    )
    stored = HumanAnnotation.objects.get()
    assert (stored.flag, stored.flag_note, stored.rating) == ("unfaithful", "not a review", "B")
    assert samples[0].text_versions.get().text == "A delight, start to end."


def test_it_refuses_to_let_an_annotator_answer_someone_elses_reservation(
    annotator_client, lead, project, routed
):
    theirs = reserve(project, lead)
    assert answer(annotator_client, project, theirs).status_code == 404
    assert not HumanAnnotation.objects.exists()


def test_it_refuses_an_item_of_another_project_through_this_project(
    annotator_client, annotator, project, routed, lead
):
    other = Project.objects.create(name="Other", created_by=lead)
    Membership.objects.create(project=other, user=annotator, role=Role.ANNOTATOR)
    held = reserve(project, annotator)
    assert answer(annotator_client, other, held).status_code == 404


def test_it_refuses_answers_and_pages_of_a_project_the_annotator_left(
    annotator_client, annotator, project, routed
):
    held = reserve(project, annotator)
    Membership.objects.filter(project=project, user=annotator).delete()
    assert answer(annotator_client, project, held).status_code == 404
    assert annotator_client.get(url("review_queue", project)).status_code == 404
    assert annotator_client.get(url("review_history", project)).status_code == 404


def test_it_skips_with_a_reason_and_serves_the_next_item(
    annotator_client, annotator, project, samples, routed
):
    held = reserve(project, annotator)
    response = annotator_client.post(url("review_skip", project, held.pk), {"reason": "ambiguous"}, **HTMX)
    assert samples[1].text in response.content.decode()
    held.refresh_from_db()
    assert (held.status, held.skip_reason) == (AssignmentStatus.SKIPPED, "ambiguous")


def test_it_skips_without_a_reason_from_a_plain_form_post(
    annotator_client, annotator, project, samples, routed
):
    held = reserve(project, annotator)
    response = annotator_client.post(url("review_skip", project, held.pk), {"reason": ""})
    assert response.status_code == 302
    held.refresh_from_db()
    assert (held.status, held.skip_reason) == (AssignmentStatus.SKIPPED, "")


def test_it_refuses_skipping_someone_elses_item(annotator_client, lead, project, routed):
    theirs = reserve(project, lead)
    assert annotator_client.post(url("review_skip", project, theirs.pk), {"reason": "x"}).status_code == 404


def test_it_undoes_the_last_answer_and_shows_that_item_again(
    annotator_client, annotator, project, samples, routed
):
    answer(annotator_client, project, reserve(project, annotator))
    response = annotator_client.post(url("review_undo", project), **HTMX)
    assert samples[0].text in response.content.decode()
    assert not HumanAnnotation.objects.exists()


def test_it_says_so_when_there_is_nothing_to_undo(annotator_client, project, routed):
    response = annotator_client.post(url("review_undo", project), **HTMX)
    assert "no answer to undo" in response.content.decode()


def test_it_refuses_undo_to_outsiders(outsider_client, project):
    assert outsider_client.post(url("review_undo", project)).status_code == 404


def test_it_lists_only_ones_own_answers_and_lets_one_edit_them(
    annotator_client, annotator, lead, project, samples, routed
):
    mine = reserve(project, annotator)
    answer(annotator_client, project, mine, "positive")
    theirs = reserve(project, lead)
    review_answer_submit(assignment=theirs, label="negative")
    body = annotator_client.get(url("review_history", project)).content.decode()
    assert samples[0].text in body and samples[1].text not in body
    assert annotator_client.get(url("review_answer_edit", project, mine.pk)).status_code == 200
    response = annotator_client.post(
        url("review_answer_edit", project, mine.pk), {"label": "negative", "edited_text": samples[0].text}
    )
    assert response.status_code == 302
    assert HumanAnnotation.objects.get(annotator=annotator).label == "negative"
    assert annotator_client.get(url("review_answer_edit", project, theirs.pk)).status_code == 404


def test_it_hides_history_and_edits_from_outsiders(outsider_client, annotator, project, routed):
    held = reserve(project, annotator)
    review_answer_submit(assignment=held, label="positive")
    assert outsider_client.get(url("review_history", project)).status_code == 404
    assert outsider_client.get(url("review_answer_edit", project, held.pk)).status_code == 404


# ------------------------------------------------------------------------------ lead pages

LEAD_PAGES = ["review_overview", "adjudication_list", "gold_items"]


@pytest.mark.parametrize("name", LEAD_PAGES)
def test_it_shows_lead_pages_to_the_lead(lead_client, project, routed, name):
    assert lead_client.get(url(name, project)).status_code == 200


@pytest.mark.parametrize("name", LEAD_PAGES)
def test_it_forbids_lead_pages_to_annotators(annotator_client, project, routed, name):
    assert annotator_client.get(url(name, project)).status_code == 403


@pytest.mark.parametrize("name", LEAD_PAGES)
def test_it_hides_lead_pages_from_outsiders(outsider_client, project, routed, name):
    assert outsider_client.get(url(name, project)).status_code == 404


def test_it_shows_the_lead_per_annotator_progress(lead_client, annotator, project, routed):
    held = reserve(project, annotator)
    Assignment.objects.filter(pk=held.pk).update(reserved_at=timezone.now() - timedelta(seconds=30))
    review_answer_submit(assignment=held, label="positive", seconds_spent=4)
    reserve(project, annotator)
    body = lead_client.get(url("review_overview", project)).content.decode()
    assert "arno_annotator" in body and "4.0" in body and "Live reservations" in body


def test_it_lets_only_the_lead_release_and_reassign(lead, annotator, outsider, project, routed):
    lead_client, annotator_client, outsider_client = (
        client_as(lead),
        client_as(annotator),
        client_as(outsider),
    )
    held = reserve(project, annotator)
    assert annotator_client.post(url("review_release", project, held.pk)).status_code == 403
    assert outsider_client.post(url("review_release", project, held.pk)).status_code == 404
    assert (
        annotator_client.post(url("review_reassign", project, held.pk), {"user_id": lead.pk}).status_code
        == 403
    )
    assert (
        outsider_client.post(url("review_reassign", project, held.pk), {"user_id": lead.pk}).status_code
        == 404
    )
    assert lead_client.post(url("review_reassign", project, held.pk), {"user_id": lead.pk}).status_code == 302
    moved = Assignment.objects.get(annotator=lead)
    assert lead_client.post(url("review_release", project, moved.pk)).status_code == 302
    moved.refresh_from_db()
    assert moved.status == AssignmentStatus.RELEASED


def disagree(project, annotator, lead, sample):
    review_tasks_create(
        project=project, samples_with_reasons=[(sample, "x", 50.0)], kind=TaskKind.ROUTED, required_answers=2
    )
    review_answer_submit(assignment=reserve(project, annotator), label="positive")
    review_answer_submit(assignment=reserve(project, lead), label="negative")


def test_it_lets_the_lead_adjudicate_a_disagreement(lead_client, annotator, lead, project, samples):
    review_gold_rate_set(project=project, gold_rate=0.0)
    disagree(project, annotator, lead, samples[0])
    assert samples[0].text in lead_client.get(url("adjudication_list", project)).content.decode()
    assert lead_client.get(url("adjudication_detail", project, samples[0].pk)).status_code == 200
    response = lead_client.post(
        url("adjudication_detail", project, samples[0].pk), {"label": "negative", "note": "irony"}
    )
    assert response.status_code == 302
    samples[0].refresh_from_db()
    assert (samples[0].final_label, samples[0].final_source) == ("negative", "adjudicated")
    assert HumanAnnotation.objects.get(source=HumanSource.ADJUDICATION).comment == "irony"


def test_it_forbids_adjudication_to_annotators_and_outsiders(annotator, outsider, project, samples):
    annotator_client, outsider_client = client_as(annotator), client_as(outsider)
    target = url("adjudication_detail", project, samples[0].pk)
    assert annotator_client.get(target).status_code == 403
    assert annotator_client.post(target, {"label": "negative", "note": "x"}).status_code == 403
    assert outsider_client.post(target, {"label": "negative", "note": "x"}).status_code == 404
    assert not HumanAnnotation.objects.exists()


def test_it_lets_the_lead_mark_gold_set_the_rate_and_remove_gold(lead_client, project, samples):
    response = lead_client.post(
        url("gold_items", project), {"sample_id": samples[2].pk, "label": "positive", "note": ""}
    )
    assert response.status_code == 302
    gold = GoldItem.objects.get()
    assert gold.label == "positive"
    assert lead_client.post(url("gold_rate_set", project), {"gold_rate": "0.25"}).status_code == 302
    assert review_gold_rate(project) == 0.25
    assert lead_client.post(url("gold_item_remove", project, gold.pk)).status_code == 302
    assert not GoldItem.objects.exists()


def test_it_refuses_gold_for_a_sample_of_another_project(lead_client, lead, project):
    other = Project.objects.create(name="Other", created_by=lead)
    foreign = Sample.objects.create(project=other, text="elsewhere")
    response = lead_client.post(url("gold_items", project), {"sample_id": foreign.pk, "label": "positive"})
    assert response.status_code == 200 and "No such sample" in response.content.decode()
    assert not GoldItem.objects.exists()


def test_it_forbids_gold_changes_to_annotators_and_outsiders(annotator, outsider, project, samples):
    annotator_client, outsider_client = client_as(annotator), client_as(outsider)
    gold = gold_item_mark(project=project, sample=samples[0], label="positive", user=None)
    assert (
        annotator_client.post(
            url("gold_items", project), {"sample_id": samples[1].pk, "label": "positive"}
        ).status_code
        == 403
    )
    assert annotator_client.post(url("gold_rate_set", project), {"gold_rate": "1"}).status_code == 403
    assert annotator_client.post(url("gold_item_remove", project, gold.pk)).status_code == 403
    assert outsider_client.post(url("gold_rate_set", project), {"gold_rate": "1"}).status_code == 404
    assert outsider_client.post(url("gold_item_remove", project, gold.pk)).status_code == 404
    assert GoldItem.objects.count() == 1


def test_it_never_tells_the_annotator_an_item_is_gold(annotator_client, annotator, project, samples):
    review_gold_rate_set(project=project, gold_rate=1.0)
    gold_item_mark(project=project, sample=samples[0], label="positive", user=None)
    body = annotator_client.get(url("review_queue", project)).content.decode()
    assert samples[0].text in body and "gold" not in body.lower()


def test_it_shows_the_review_entry_on_the_project_overview(annotator_client, project):
    body = annotator_client.get(reverse("project_detail", args=[project.id])).content.decode()
    assert url("review_queue", project) in body and url("review_overview", project) not in body


def test_the_progress_after_an_answer_matches_a_fresh_count(
    annotator_client, annotator, project, samples, routed
):
    import re

    page = annotator_client.get(url("review_queue", project), **HTMX).content.decode()
    action = re.search(r'id="answer-form"[^>]*?action="([^"]+)"', page, re.S).group(1)
    submission = re.search(r'name="submission_id" value="([0-9a-f]+)"', page).group(1)
    page = annotator_client.post(
        action, {"label": "positive", "submission_id": submission}, **HTMX
    ).content.decode()
    done = int(re.search(r"<strong>(\d+)</strong> done today", page).group(1))
    left = int(re.search(r"<strong>(\d+)\+?</strong> left", page).group(1))
    fresh = review_progress(project=project, annotator=annotator)
    assert (done, left) == (fresh.done_today, fresh.remaining + 1) == (1, len(routed) - 1)
