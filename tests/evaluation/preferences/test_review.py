"""The pairwise review page: any member compares two responses; positions are randomised per annotator and
recorded; the stored choice always refers to the pair's A and B."""

from __future__ import annotations

import pytest

from evaluation.models import PairChoice, PairwiseItem, PairwiseJudgment, RaterKind
from evaluation.preferences.files import PairRecord
from evaluation.preferences.services import a_shown_first_for, pairwise_import


@pytest.fixture
def pairs(project):
    records = [
        PairRecord(f"Prompt {i}", f"Answer A{i}", f"Answer B{i}", "model-x", "model-y", str(i))
        for i in range(12)
    ]
    pairwise_import(project=project, records=records, batch="fixture")
    return list(PairwiseItem.objects.filter(project=project).order_by("id"))


def test_positions_are_randomised_per_annotator_and_pair(pairs, lead, annotator):
    for_annotator = [a_shown_first_for(item_id=p.id, user_id=annotator.id) for p in pairs]
    assert True in for_annotator and False in for_annotator
    assert for_annotator == [a_shown_first_for(item_id=p.id, user_id=annotator.id) for p in pairs]  # stable


def test_the_annotator_sees_the_first_pair_in_their_order(annotator_client, annotator, project, pairs):
    body = annotator_client.get(f"/projects/{project.id}/evaluation/pairs/").content.decode()
    item = pairs[0]
    first = item.response_a if a_shown_first_for(item_id=item.id, user_id=annotator.id) else item.response_b
    assert body.index(first) < body.index(item.response_b if first == item.response_a else item.response_a)
    assert "model-x" not in body  # sources stay hidden


def test_choosing_the_first_response_stores_the_side_it_was_and_the_position(
    annotator_client, annotator, project, pairs
):
    item = pairs[0]
    response = annotator_client.post(
        f"/projects/{project.id}/evaluation/pairs/", {"item": item.id, "choice": "first"}
    )
    assert response.status_code == 302
    judgment = PairwiseJudgment.objects.get(item=item)
    a_first = a_shown_first_for(item_id=item.id, user_id=annotator.id)
    assert judgment.a_shown_first == a_first
    assert judgment.choice == (PairChoice.A if a_first else PairChoice.B)
    assert judgment.rater.kind == RaterKind.HUMAN and judgment.rater.user == annotator


def test_after_judging_the_next_pair_is_served(annotator_client, project, pairs):
    annotator_client.post(f"/projects/{project.id}/evaluation/pairs/", {"item": pairs[0].id, "choice": "tie"})
    body = annotator_client.get(
        f"/projects/{project.id}/evaluation/pairs/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Prompt 1" in body and "Prompt 0" not in body
    assert "<html" not in body  # the htmx branch returns the fragment


def test_it_rejects_an_unknown_choice(annotator_client, project, pairs):
    annotator_client.post(
        f"/projects/{project.id}/evaluation/pairs/", {"item": pairs[0].id, "choice": "both"}
    )
    assert not PairwiseJudgment.objects.exists()


def test_the_lead_can_compare_pairs_too(lead_client, project, pairs):
    lead_client.post(f"/projects/{project.id}/evaluation/pairs/", {"item": pairs[0].id, "choice": "second"})
    assert PairwiseJudgment.objects.count() == 1


def test_it_says_so_when_nothing_is_left(annotator_client, project):
    body = annotator_client.get(f"/projects/{project.id}/evaluation/pairs/").content.decode()
    assert "No pairs left" in body


def test_outsiders_cannot_see_or_judge_pairs(outsider_client, project, pairs):
    assert outsider_client.get(f"/projects/{project.id}/evaluation/pairs/").status_code == 404
    response = outsider_client.post(
        f"/projects/{project.id}/evaluation/pairs/", {"item": pairs[0].id, "choice": "first"}
    )
    assert response.status_code == 404
    assert not PairwiseJudgment.objects.exists()


def test_a_pair_id_with_a_superscript_digit_is_a_404_not_a_server_error(annotator_client, project, pairs):
    response = annotator_client.post(
        f"/projects/{project.id}/evaluation/pairs/", {"item": "²", "choice": "first"}
    )
    assert response.status_code == 404  # "²".isdigit() is True, int("²") fails
    assert not PairwiseJudgment.objects.exists()


def test_an_unknown_choice_on_a_pair_is_refused_with_a_message(annotator_client, project, pairs):
    response = annotator_client.post(
        f"/projects/{project.id}/evaluation/pairs/", {"item": pairs[0].id, "choice": "both"}, follow=True
    )
    assert "Choose the first response, the second, or a tie." in response.content.decode()
    assert not PairwiseJudgment.objects.exists()
