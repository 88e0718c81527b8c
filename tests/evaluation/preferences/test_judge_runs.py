"""LLM-as-judge runs through generation.llm against the local OpenAI-compatible test server."""

from __future__ import annotations

import json
import re

import pytest

from evaluation.models import JudgeKind, JudgeRating, JudgeRun, PairChoice, PairwiseJudgment
from evaluation.preferences.files import PairRecord
from evaluation.preferences.judges import canonical_choice, judge_run_start, parse_rating, parse_winner
from evaluation.preferences.services import pairwise_import
from generation.models import LLMEndpoint
from synthstudio.models import HumanAnnotation, JobStatus


@pytest.fixture
def endpoint(openai_server, project):
    return LLMEndpoint.objects.create(
        project=project,
        name="test server",
        base_url=openai_server.base_url,
        model="judge-model",
        max_retries=1,
    )


def responses_in(body: dict) -> tuple[str, str]:
    text = body["messages"][-1]["content"]
    first = re.search(r"Response 1:\n(.*?)\n\nResponse 2:", text, re.S).group(1)
    second = re.search(r"Response 2:\n(.*?)\n\nWhich", text, re.S).group(1)
    return first, second


def position_biased_judge(body: dict, index: int) -> str:
    """Prefers the response that says GOOD, except when a response mentions 'coin': then always the first."""
    first, second = responses_in(body)
    if "coin" in first + second:
        return json.dumps({"winner": "1"})
    return json.dumps({"winner": "1" if "GOOD" in first else "2"})


@pytest.fixture
def pairs(project):
    records = [
        PairRecord("p1", "GOOD one", "bad one", "m1", "m2", "1", [("ann1", "a"), ("ann2", "a")]),
        PairRecord("p2", "bad two", "GOOD two", "m1", "m2", "2", [("ann1", "b"), ("ann2", "b")]),
        PairRecord("p3", "coin heads", "coin tails", "m1", "m2", "3", [("ann1", "tie"), ("ann2", "tie")]),
        PairRecord("p4", "GOOD four", "bad four", "m2", "m1", "4", [("ann1", "b"), ("ann2", "b")]),
    ]
    pairwise_import(project=project, records=records, batch="fixture")


def test_a_pairwise_run_judges_each_pair_in_both_orders_and_reports_position_bias(
    project, lead, endpoint, pairs, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = position_biased_judge
    with django_capture_on_commit_callbacks(execute=True):
        run = judge_run_start(
            project=project, user=lead, kind=JudgeKind.PAIRWISE, endpoint=endpoint, limit=10
        )
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert openai_server.request_count == 8
    assert PairwiseJudgment.objects.filter(judge_run=run).count() == 8
    summary = run.summary
    assert summary["pairs_both_orders"] == 4
    assert summary["position_bias_rate"] == pytest.approx(1 / 4)
    assert summary["prefers_first"] == 1
    # verdicts: p1 a, p2 b, p3 inconsistent → tie, p4 a; humans: a, b, tie, b → 3 of 4 agree
    assert summary["agreement"] == pytest.approx(3 / 4)
    assert summary["kappa"] is not None


def test_a_rerun_of_a_finished_pair_run_sends_nothing(
    project, lead, endpoint, pairs, openai_server, django_capture_on_commit_callbacks
):
    from evaluation.tasks import judge_run_task

    openai_server.responder = position_biased_judge
    with django_capture_on_commit_callbacks(execute=True):
        run = judge_run_start(
            project=project, user=lead, kind=JudgeKind.PAIRWISE, endpoint=endpoint, limit=10
        )
    sent = openai_server.request_count
    judge_run_task(run.id)
    assert openai_server.request_count == sent


def test_a_rating_run_reports_kappa_with_human_ratings(
    project, lead, annotator, samples, endpoint, openai_server, django_capture_on_commit_callbacks
):
    human = {samples[0]: "A", samples[1]: "D", samples[2]: "B", samples[3]: "D"}
    for sample, rating in human.items():
        HumanAnnotation.objects.create(sample=sample, annotator=annotator, rating=rating)
    judge = {s.text: r for s, r in zip(samples, ["A", "D", "A", "D"], strict=True)}

    def responder(body, index):
        content = body["messages"][-1]["content"]
        text = next(t for t in judge if t in content)
        return json.dumps({"rating": judge[text], "reason": "scripted"})

    openai_server.responder = responder
    with django_capture_on_commit_callbacks(execute=True):
        run = judge_run_start(project=project, user=lead, kind=JudgeKind.RATING, endpoint=endpoint, limit=10)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert JudgeRating.objects.filter(run=run).count() == 4
    assert run.summary["with_humans"] == 4
    assert run.summary["agreement"] == pytest.approx(3 / 4)
    from sklearn.metrics import cohen_kappa_score

    assert run.summary["kappa"] == pytest.approx(
        cohen_kappa_score(["A", "D", "B", "D"], ["A", "D", "A", "D"]), abs=1e-9
    )
    assert run.summary["distribution"] == {"A": 2, "B": 0, "C": 0, "D": 2}


def test_a_judge_run_with_an_endpoint_is_not_offline(project, lead, endpoint):
    run = judge_run_start(project=project, user=lead, kind=JudgeKind.RATING, endpoint=endpoint, limit=5)
    assert not run.is_offline
    assert (run.base_url, run.model_name) == (endpoint.base_url, "judge-model")


def test_a_failing_endpoint_counts_failures_instead_of_inventing_verdicts(
    project, lead, endpoint, pairs, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = lambda body, index: "I cannot decide."
    with django_capture_on_commit_callbacks(execute=True):
        run = judge_run_start(project=project, user=lead, kind=JudgeKind.PAIRWISE, endpoint=endpoint, limit=2)
    run.refresh_from_db()
    assert run.failed == 4
    assert not PairwiseJudgment.objects.filter(judge_run=run).exists()


def test_verdicts_by_position_map_back_to_the_items_sides():
    assert canonical_choice("1", a_first=True) == PairChoice.A
    assert canonical_choice("1", a_first=False) == PairChoice.B
    assert canonical_choice("2", a_first=False) == PairChoice.A
    assert canonical_choice("tie", a_first=False) == PairChoice.TIE
    assert parse_winner(None, "Response 2 is better, so: 2") == "2"
    assert parse_rating({"rating": "b"}, None) == "B"
    assert parse_rating(None, "no letter here") == ""


def test_the_judge_page_starts_a_run_for_the_lead(
    lead_client, project, endpoint, pairs, openai_server, django_capture_on_commit_callbacks
):
    openai_server.responder = position_biased_judge
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            f"/projects/{project.id}/evaluation/judges/start/",
            {"kind": "pairwise", "endpoint": endpoint.id, "limit": 4},
        )
    run = JudgeRun.objects.get(project=project)
    assert response["Location"] == f"/projects/{project.id}/evaluation/judges/{run.id}/"
    body = lead_client.get(response["Location"]).content.decode()
    assert "position bias rate" in body
    assert "25%" in body


def test_the_judge_pages_are_forbidden_to_annotators(annotator_client, project, endpoint):
    assert (
        annotator_client.post(
            f"/projects/{project.id}/evaluation/judges/start/", {"kind": "rating"}
        ).status_code
        == 403
    )
    run = JudgeRun.objects.create(project=project, kind=JudgeKind.RATING, base_url="http://x", model_name="m")
    assert annotator_client.get(f"/projects/{project.id}/evaluation/judges/{run.id}/").status_code == 403


def test_the_judge_pages_are_hidden_from_outsiders(outsider_client, project):
    run = JudgeRun.objects.create(project=project, kind=JudgeKind.RATING, base_url="http://x", model_name="m")
    assert outsider_client.get(f"/projects/{project.id}/evaluation/judges/{run.id}/").status_code == 404
    assert (
        outsider_client.post(
            f"/projects/{project.id}/evaluation/judges/start/", {"kind": "rating"}
        ).status_code
        == 404
    )


def test_an_endpoint_id_that_is_not_a_number_is_a_404(lead_client, project):
    from django.urls import reverse

    response = lead_client.post(
        reverse("evaluation:judge_start", args=[project.id]), {"kind": "rating", "endpoint": "1 OR 1=1"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("endpoint_id", ["²", "999999", " 1"])
def test_an_endpoint_that_is_not_one_of_the_project_is_a_404_not_a_server_error(
    lead_client, project, endpoint_id
):
    response = lead_client.post(
        f"/projects/{project.id}/evaluation/judges/start/", {"kind": "rating", "endpoint": endpoint_id}
    )
    assert response.status_code == 404
    assert not JudgeRun.objects.exists()


def test_an_unknown_judge_kind_is_refused_with_a_message(lead_client, project):
    response = lead_client.post(
        f"/projects/{project.id}/evaluation/judges/start/", {"kind": "essay"}, follow=True
    )
    assert response.redirect_chain == [(f"/projects/{project.id}/evaluation/preferences/", 302)]
    assert "Choose what the judge should do." in response.content.decode()
    assert not JudgeRun.objects.exists()


@pytest.mark.parametrize(
    ("limit", "stored"), [("0", 1), ("99999", 5000), ("many", 200), ("", 200), ("35", 35)]
)
def test_the_judge_limit_is_kept_between_1_and_5000(lead_client, project, limit, stored):
    lead_client.post(
        f"/projects/{project.id}/evaluation/judges/start/",
        {"kind": "rating", "endpoint": "offline", "limit": limit},
    )
    run = JudgeRun.objects.get()
    assert run.limit == stored and run.is_offline
