"""Pairwise judging as part of the annotator's review queue: once the label queue is empty the workbench loads
the next pair (keys 1/2/3, sides randomised per annotator); the judgment feeds the Elo and Bradley-Terry
leaderboard; the label-answer POST makes no query for pairs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import TaskKind
from annotation.review import queue as review
from evaluation.models import PairChoice, PairwiseItem, PairwiseJudgment
from evaluation.preferences.pairs import pairwise_from_generation
from evaluation.preferences.services import a_shown_first_for, pairwise_pending_count, pairwise_summary
from synthstudio.models import Membership, Project, Role
from synthstudio.services import codebook_create_version
from tests.conftest import LABELS, make_user
from tests.evaluation.preferences.test_pairs_from_generation import ACTING, PLOT, finished_run, make_config

HTMX = {"HTTP_HX_REQUEST": "true"}
# Queries of the htmx label-answer POST that answers the last routed item, measured before pairs joined the
# queue (the lead's hot path; pairs must add nothing to it). 22 on PostgreSQL since the queue is on the ORM
# (21 before): the final label locks the sample row in a statement of its own; SQLite needs no lock (21).
ANSWER_POST_QUERIES_BEFORE_PAIRS = 22


def client_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def make_generated_pairs(project, lead) -> list[PairwiseItem]:
    """Three pairs made from two generation runs, in the order the annotator is served them."""
    run_a = finished_run(
        make_config(project, lead, "warm"),
        lead,
        [(PLOT, "Warm plot"), (ACTING, "Warm acting"), (PLOT, "Warm plot 2")],
    )
    run_b = finished_run(
        make_config(project, lead, "cold"),
        lead,
        [(PLOT, "Cold plot"), (ACTING, "Cold acting"), (PLOT, "Cold plot 2")],
    )
    pairwise_from_generation(project=project, key_a=f"run:{run_a.id}", key_b=f"run:{run_b.id}")
    return list(PairwiseItem.objects.filter(project=project).order_by("id"))


@pytest.fixture
def generated_pairs(project, lead):
    return make_generated_pairs(project, lead)


def queue_url(project) -> str:
    return reverse("annotation:review_queue", args=[project.id])


def pair_url(project) -> str:
    return reverse("evaluation:pairwise_review", args=[project.id])


def badge_url(project) -> str:
    """The "N pairs waiting" note, which a full workbench page loads from evaluation with hx-get."""
    return reverse("evaluation:pairwise_waiting_badge", args=[project.id])


def test_the_empty_workbench_loads_the_pair_task_and_the_header_says_how_many_pairs_wait(
    annotator, project, generated_pairs
):
    client = client_as(annotator)
    body = client.get(queue_url(project)).content.decode()
    assert "Nothing left in your queue" in body
    assert f'hx-get="{pair_url(project)}?in=queue"' in body
    assert f'hx-get="{badge_url(project)}"' in body
    assert "<strong>3</strong> pairs waiting" in client.get(badge_url(project), **HTMX).content.decode()


def test_the_pairs_waiting_note_is_left_out_of_htmx_workbench_responses(annotator, project, generated_pairs):
    body = client_as(annotator).get(queue_url(project), **HTMX).content.decode()
    assert "pairs waiting" not in body and badge_url(project) not in body and "<html" not in body


def test_the_workbench_says_nothing_about_pairs_when_there_are_none(annotator, project):
    client = client_as(annotator)
    assert client.get(badge_url(project), **HTMX).content == b""
    loaded = client.get(pair_url(project) + "?in=queue", **HTMX).content.decode()
    assert 'id="pair"' in loaded and "No pairs left" not in loaded and "<html" not in loaded


def test_the_annotator_judges_a_pair_from_the_workbench_and_it_counts_in_the_elo_and_bradley_terry_leaderboard(
    annotator, project, generated_pairs
):
    client = client_as(annotator)
    loaded = client.get(pair_url(project) + "?in=queue", **HTMX).content.decode()
    item = generated_pairs[0]
    assert item.prompt in loaded and 'data-key="1"' in loaded and 'data-key="3"' in loaded
    a_first = a_shown_first_for(item_id=item.id, user_id=annotator.id)
    next_pair = client.post(
        pair_url(project), {"item": item.id, "choice": "first"}, follow=True, **HTMX
    ).content.decode()
    assert generated_pairs[1].prompt in next_pair and 'id="pair-form"' in next_pair
    judgment = PairwiseJudgment.objects.get(item=item)
    assert (
        judgment.choice == (PairChoice.A if a_first else PairChoice.B) and judgment.a_shown_first == a_first
    )
    summary = pairwise_summary(project=project)
    assert summary["judgments"] == 1
    players = {row["player"]: row for row in summary["leaderboard"]}
    assert set(players) == {item.source_a, item.source_b}
    winner = item.source_a if a_first else item.source_b
    loser = item.source_b if a_first else item.source_a
    assert players[winner]["elo"] > players[loser]["elo"] and players[winner]["bt"] > players[loser]["bt"]
    assert pairwise_pending_count(project=project, user=annotator) == 2


def test_after_the_last_pair_the_workbench_pair_task_says_nothing_is_left(
    annotator, project, generated_pairs
):
    client = client_as(annotator)
    for item in generated_pairs:
        last = client.post(
            pair_url(project), {"item": item.id, "choice": "tie"}, follow=True, **HTMX
        ).content.decode()
    assert "No pairs left for you to compare" in last
    assert client.get(badge_url(project), **HTMX).content == b""


def test_pair_positions_in_the_queue_are_randomised_per_annotator_and_stable(
    lead, annotator, project, generated_pairs
):
    sides = {
        user.id: [a_shown_first_for(item_id=p.id, user_id=user.id) for p in generated_pairs]
        for user in (lead, annotator)
    }
    shown = []
    for user in (lead, annotator):
        body = client_as(user).get(pair_url(project) + "?in=queue", **HTMX).content.decode()
        item = generated_pairs[0]
        shown.append(body.index(item.response_a) < body.index(item.response_b))
    assert shown == [sides[lead.id][0], sides[annotator.id][0]]
    more = [a_shown_first_for(item_id=item_id, user_id=annotator.id) for item_id in range(1, 41)]
    assert True in more and False in more


def test_an_annotator_of_another_project_cannot_judge_the_pair(project, generated_pairs, outsider):
    elsewhere = Project.objects.create(name="Elsewhere", created_by=outsider)
    Membership.objects.create(project=elsewhere, user=outsider, role=Role.ANNOTATOR)
    codebook_create_version(
        project=elsewhere, user=outsider, task_description="Other.", guidelines="", labels=LABELS
    )
    client = client_as(outsider)
    item = generated_pairs[0]
    assert client.post(pair_url(project), {"item": item.id, "choice": "first"}, **HTMX).status_code == 404
    through_own = client.post(
        reverse("evaluation:pairwise_review", args=[elsewhere.id]),
        {"item": item.id, "choice": "first"},
        **HTMX,
    )
    assert through_own.status_code == 404
    assert client.get(pair_url(project) + "?in=queue", **HTMX).status_code == 404
    assert not PairwiseJudgment.objects.exists()


def answer_last_item_queries(project, sample) -> list[str]:
    """SQL of the htmx label-answer POST with which a new annotator answers their only routed item (the
    response is the empty state, where pairs appear)."""
    annotator = make_user(f"annotator_of_{sample.id}")
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    review.review_gold_rate_set(project=project, gold_rate=0.0)
    review.review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test", 1.0)],
        kind=TaskKind.ROUTED,
        required_answers=1,
    )
    client = client_as(annotator)
    assignment = review.review_next(project=project, annotator=annotator)
    url = reverse("annotation:review_answer", args=[project.id, assignment.pk])
    with CaptureQueriesContext(connection) as captured:
        response = client.post(url, {"label": "positive", "submission_id": f"only-{sample.id}"}, **HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and "Nothing left in your queue" in body
    return [query["sql"] for query in captured.captured_queries]


def test_the_label_answer_post_makes_no_query_for_pairs(project, lead, samples):
    answer_last_item_queries(project, samples[0])  # warms the answer path's caches
    without_pairs = answer_last_item_queries(project, samples[1])
    make_generated_pairs(project, lead)
    with_pairs = answer_last_item_queries(project, samples[2])
    assert not [sql for sql in with_pairs if "evaluation_pairwise" in sql]
    assert len(with_pairs) == len(without_pairs)


def test_the_label_answer_post_makes_no_more_queries_than_before_pairs_joined_the_queue(
    project, annotator, samples, generated_pairs, django_assert_max_num_queries
):
    """The steady-state answer: a first answer warms the per-process caches the answer path reads (gold rate,
    label aggregation, rounds waiting for answers — each re-read at most every 10 s), the second is counted."""
    review.review_gold_rate_set(project=project, gold_rate=0.0)
    review.review_tasks_create(
        project=project,
        samples_with_reasons=[(samples[0], "test", 1.0), (samples[1], "test", 0.5)],
        kind=TaskKind.ROUTED,
        required_answers=1,
    )
    client = client_as(annotator)
    warm_up = review.review_next(project=project, annotator=annotator)
    response = client.post(
        reverse("annotation:review_answer", args=[project.id, warm_up.pk]),
        {"label": "positive", "submission_id": "warm-up"},
        **HTMX,
    )
    assert response.status_code == 200
    assignment = review.review_next(project=project, annotator=annotator)
    assert assignment is not None and assignment.pk != warm_up.pk
    url = reverse("annotation:review_answer", args=[project.id, assignment.pk])
    with django_assert_max_num_queries(ANSWER_POST_QUERIES_BEFORE_PAIRS):
        response = client.post(url, {"label": "positive", "submission_id": "only-one"}, **HTMX)
    assert response.status_code == 200 and "Nothing left in your queue" in response.content.decode()


def test_a_pair_id_that_is_not_a_number_is_a_404_not_a_server_error(annotator_client, project):
    response = annotator_client.post(
        reverse("evaluation:pairwise_review", args=[project.id]), {"item": "1 OR 1=1", "choice": "first"}
    )
    assert response.status_code == 404
