"""Evaluation dashboards: cached numbers for leads, 403 for annotators, 404 for outsiders, recompute state,
CSV downloads and the dashboard numbers themselves on a hand-checkable project."""

from __future__ import annotations

import csv
import io

import pytest
from sklearn.metrics import cohen_kappa_score

from annotation.review.final_labels import final_label_refresh
from evaluation.dashboards.services import dashboard_payload, metrics_data_version, metrics_refresh_start
from evaluation.models import MetricsCache, MetricsRefresh
from synthstudio.models import (
    FlagReason,
    HumanAnnotation,
    HumanSource,
    JobStatus,
    LabelMethod,
    LLMAnnotation,
    Sample,
)
from tests.conftest import make_user

DASHBOARDS = ["", "agreement/", "diversity/", "benchmark/", "preferences/"]


def llm_label(sample, label, confidence):
    other = "negative" if label == "positive" else "positive"
    LLMAnnotation.objects.create(
        sample=sample,
        label=label,
        distribution={label: confidence, other: 1 - confidence},
        confidence=confidence,
        method=LabelMethod.IMPORTED,
    )


@pytest.fixture
def labelled(project, samples, lead, annotator):
    """4 samples from two runs; the LLM labels all, both people label all four (they disagree on one), and
    the annotator rates three of them A, C and B (one flagged unfaithful)."""
    for sample, run in zip(samples, ["1", "1", "2", "2"], strict=True):
        sample.provenance = {
            "run_id": run,
            "config_name": f"config-{run}",
            "conditions": {"tone": "warm" if run == "1" else "dry"},
        }
        sample.save()
    for sample, label in zip(samples, ["positive", "negative", "positive", "positive"], strict=True):
        llm_label(sample, label, 0.9)
    human = {
        lead: ["positive", "negative", "positive", "negative"],
        annotator: ["positive", "negative", "positive", "positive"],
    }
    for person, labels in human.items():
        for sample, label in zip(samples, labels, strict=True):
            HumanAnnotation.objects.create(
                sample=sample, annotator=person, label=label, source=HumanSource.REVIEW
            )
    for sample, rating, flag in [
        (samples[0], "A", ""),
        (samples[1], "C", ""),
        (samples[2], "B", FlagReason.UNFAITHFUL),
    ]:
        HumanAnnotation.objects.filter(sample=sample, annotator=annotator).update(rating=rating, flag=flag)
    for sample in samples:
        final_label_refresh(sample=sample)
    return samples


@pytest.fixture
def computed(project, labelled, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = metrics_refresh_start(project=project)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    return MetricsCache.objects.get(project=project)


def test_the_payload_counts_faithfulness_per_run_and_label(project, labelled):
    faithfulness = dashboard_payload(project=project)["faithfulness"]
    # A acceptable; C not; B flagged unfaithful → not acceptable
    assert (faithfulness["overall"]["acceptable"], faithfulness["overall"]["n"]) == (1, 3)
    groups = {(g["dimension"], g["value"]): (g["acceptable"], g["n"]) for g in faithfulness["groups"]}
    assert groups[("run", "1")] == (1, 2)
    assert groups[("run", "2")] == (0, 1)
    assert groups[("condition", "tone=warm")] == (1, 2)
    assert faithfulness["flags"] == {"unfaithful": 1}


def test_the_payload_agreement_matches_sklearn(project, labelled):
    agreement = dashboard_payload(project=project)["agreement"]
    lead_labels = ["positive", "negative", "positive", "negative"]
    annotator_labels = ["positive", "negative", "positive", "positive"]
    [pair] = agreement["human_human"]["pairs"]
    assert pair["kappa"] == pytest.approx(cohen_kappa_score(lead_labels, annotator_labels), abs=1e-9)
    assert agreement["human_human"]["fleiss"] is not None  # two raters on every overlap item
    # sample 4 is a human tie: it keeps its LLM label, so 3 human-final items are compared with the LLM
    human_llm = agreement["human_llm"]
    assert human_llm["n"] == 3
    assert human_llm["labels"] == ["positive", "negative"]
    assert human_llm["matrix"] == [[2, 0], [0, 1]]


def test_the_payload_reports_annotator_agreement_with_the_llm(project, labelled):
    stats = {row["name"]: row for row in dashboard_payload(project=project)["annotators"]}
    assert stats["lena_lead"]["agree_llm"] == pytest.approx(3 / 4)
    assert stats["arno_annotator"]["agree_llm"] == pytest.approx(1.0)
    assert stats["arno_annotator"]["ratings"] == 3


def test_the_data_version_changes_when_an_answer_is_added(project, labelled, annotator):
    before = metrics_data_version(project=project)
    HumanAnnotation.objects.create(sample=labelled[0], annotator=annotator, label="negative")
    assert metrics_data_version(project=project) != before


@pytest.mark.parametrize("page", DASHBOARDS)
def test_each_dashboard_renders_cached_numbers_for_the_lead(lead_client, project, computed, page):
    response = lead_client.get(f"/projects/{project.id}/evaluation/{page}")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Evaluation" in body
    assert "recomputing" not in body


@pytest.mark.parametrize("page", DASHBOARDS)
def test_each_dashboard_is_forbidden_to_annotators(annotator_client, project, page):
    assert annotator_client.get(f"/projects/{project.id}/evaluation/{page}").status_code == 403


@pytest.mark.parametrize("page", DASHBOARDS)
def test_each_dashboard_is_hidden_from_outsiders(outsider_client, project, page):
    assert outsider_client.get(f"/projects/{project.id}/evaluation/{page}").status_code == 404


def test_the_overview_shows_the_faithfulness_interval_and_ratings_needed(lead_client, project, computed):
    body = lead_client.get(f"/projects/{project.id}/evaluation/?margin=0.1").content.decode()
    assert "more for ±10 pts" in body
    assert "<svg" in body


def test_the_agreement_page_draws_the_confusion_heatmap(lead_client, project, computed):
    body = lead_client.get(f"/projects/{project.id}/evaluation/agreement/").content.decode()
    assert "Human vs LLM" in body
    assert "positive → positive: 2 (100% of row)" in body


def test_changed_data_shows_the_previous_numbers_and_queues_a_recompute(
    lead_client, project, computed, labelled, annotator
):
    Sample.objects.create(project=project, text="A brand new review.")
    body = lead_client.get(f"/projects/{project.id}/evaluation/").content.decode()
    assert "recomputing — these are the previous numbers" in body
    assert MetricsRefresh.objects.filter(project=project, status=JobStatus.QUEUED).count() == 1
    lead_client.get(f"/projects/{project.id}/evaluation/diversity/")
    assert (
        MetricsRefresh.objects.filter(project=project, status=JobStatus.QUEUED).count() == 1
    )  # not queued twice


def test_a_first_visit_says_the_numbers_are_being_computed(lead_client, project, labelled):
    body = lead_client.get(f"/projects/{project.id}/evaluation/").content.decode()
    assert "Computing the numbers for the first time" in body


def test_the_refresh_status_asks_htmx_to_reload_once_done(lead_client, project, computed):
    job = MetricsRefresh.objects.get(project=project)
    response = lead_client.get(
        f"/projects/{project.id}/evaluation/recompute/{job.id}/", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response["HX-Refresh"] == "true"


def test_recompute_is_forbidden_to_annotators(annotator_client, project):
    assert annotator_client.post(f"/projects/{project.id}/evaluation/recompute/").status_code == 403


def test_recompute_queues_a_fresh_job_for_the_lead(lead_client, project, computed):
    response = lead_client.post(
        f"/projects/{project.id}/evaluation/recompute/",
        {"next": f"/projects/{project.id}/evaluation/agreement/"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.id}/evaluation/agreement/"
    assert MetricsRefresh.objects.filter(project=project).count() == 2


def test_the_label_distribution_csv_has_the_chart_numbers(lead_client, project, computed):
    response = lead_client.get(f"/projects/{project.id}/evaluation/csv/label-distribution.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["label", "final_label_count", "llm_label_count", "human_answer_count"]
    assert rows[1] == [
        "positive",
        "3",
        "3",
        "5",
    ]  # sample 4 is a human tie and keeps its LLM label (positive)
    assert rows[2] == ["negative", "1", "1", "3"]


@pytest.mark.parametrize("table", ["confidence", "entropy", "faithfulness", "confusion-matrix", "per-label",
                                   "agreement-over-time", "annotator-pairs", "annotators", "diversity", "leaderboard",
                                   "pairwise-raters", "benchmark"])  # fmt: skip
def test_every_chart_table_downloads_as_csv(lead_client, project, computed, table):
    response = lead_client.get(f"/projects/{project.id}/evaluation/csv/{table}.csv")
    assert response.status_code == 200
    assert len(response.content.decode().splitlines()) >= 1


def test_csv_downloads_are_forbidden_to_annotators(annotator_client, project):
    assert annotator_client.get(f"/projects/{project.id}/evaluation/csv/diversity.csv").status_code == 403


def test_csv_downloads_are_hidden_from_outsiders(outsider_client, project):
    assert outsider_client.get(f"/projects/{project.id}/evaluation/csv/diversity.csv").status_code == 404


def test_an_unknown_csv_table_is_not_found(lead_client, project):
    assert lead_client.get(f"/projects/{project.id}/evaluation/csv/nonsense.csv").status_code == 404


def test_label_names_are_escaped_in_charts(lead_client, project, computed, samples):
    other = make_user("eve_editor")
    sample = Sample.objects.create(project=project, text="x")
    HumanAnnotation.objects.create(sample=sample, annotator=other, label="<script>alert(1)</script>")
    MetricsCache.objects.filter(project=project).update(payload=dashboard_payload(project=project))
    body = lead_client.get(f"/projects/{project.id}/evaluation/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body


def test_recompute_is_hidden_from_outsiders(outsider_client, project):
    assert outsider_client.post(f"/projects/{project.id}/evaluation/recompute/").status_code == 404


def test_the_refresh_status_is_forbidden_to_annotators(annotator_client, project):
    job = MetricsRefresh.objects.create(project=project, data_version="v")
    assert annotator_client.get(f"/projects/{project.id}/evaluation/recompute/{job.id}/").status_code == 403


def test_the_refresh_status_is_hidden_from_outsiders(outsider_client, project):
    job = MetricsRefresh.objects.create(project=project, data_version="v")
    assert outsider_client.get(f"/projects/{project.id}/evaluation/recompute/{job.id}/").status_code == 404


def test_a_queued_refresh_without_a_worker_says_so(lead_client, project, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr("evaluation.dashboards.views.worker_alive", lambda: False)
    job = MetricsRefresh.objects.create(project=project, data_version="v")
    body = lead_client.get(f"/projects/{project.id}/evaluation/recompute/{job.id}/").content.decode()
    assert "no worker is running" in body


def test_recompute_goes_back_to_the_overview_from_a_page_outside_the_project(lead_client, project, computed):
    for elsewhere in ("https://example.com/", "//example.com/", f"/projects/{project.id + 1}/evaluation/"):
        response = lead_client.post(f"/projects/{project.id}/evaluation/recompute/", {"next": elsewhere})
        assert response["Location"] == f"/projects/{project.id}/evaluation/"
