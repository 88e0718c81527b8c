"""Browser tests: a lead opens every evaluation dashboard (screenshots in test-artifacts/); an annotator is
refused them but compares pairs with the keyboard."""

from __future__ import annotations

import pytest

from evaluation.dashboards.services import metrics_refresh_start
from evaluation.models import BenchmarkRun, JudgeKind, JudgeRun, MetricsCache, PairwiseJudgment
from evaluation.preferences.files import parse_pairwise_file
from evaluation.preferences.services import pairwise_import
from synthstudio.models import JobStatus
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD
from tests.evaluation.dashboards.test_views import labelled  # noqa: F401 - fixture
from tests.evaluation.preferences.test_import import pandalm_bytes

DASHBOARDS = {
    "overview": "",
    "agreement": "agreement/",
    "diversity": "diversity/",
    "benchmark": "benchmark/",
    "preferences": "preferences/",
}


@pytest.fixture
def evaluated(project, labelled, lead):  # noqa: F811 - the imported fixture
    pairwise_import(
        project=project, records=parse_pairwise_file(pandalm_bytes(), "pandalm_testset.json"), batch="pandalm"
    )
    BenchmarkRun.objects.create(
        project=project, created_by=lead, status=JobStatus.SUCCEEDED, test_fraction=0.3,
        results=[
            {"training_set": "Raw LLM labels", "model": "embedding + logistic regression", "n_train": 40, "n_test": 12, "accuracy": 0.75, "macro_f1": 0.74, "note": ""},
            {"training_set": "Raw LLM labels", "model": "TF-IDF + logistic regression", "n_train": 40, "n_test": 12, "accuracy": 0.67, "macro_f1": 0.66, "note": ""},
            {"training_set": "Human-verified only", "model": "embedding + logistic regression", "n_train": 20, "n_test": 12, "accuracy": 0.83, "macro_f1": 0.83, "note": ""},
            {"training_set": "Human-verified only", "model": "TF-IDF + logistic regression", "n_train": 20, "n_test": 12, "accuracy": 0.58, "macro_f1": 0.55, "note": ""},
        ],
    )  # fmt: skip
    JudgeRun.objects.create(
        project=project,
        kind=JudgeKind.PAIRWISE,
        base_url="http://127.0.0.1:9/v1",
        model_name="judge-model",
        status=JobStatus.SUCCEEDED,
        summary={"pairs_both_orders": 5, "position_bias_rate": 0.2, "kappa": 0.61, "with_humans": 5},
    )
    metrics_refresh_start(project=project)  # eager Celery: runs on commit (live_server tests autocommit)
    assert MetricsCache.objects.filter(project=project).exists()
    return project


@pytest.mark.browser
def test_a_lead_opens_every_dashboard(browser_page, live_server, lead, evaluated):
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    for name, path in DASHBOARDS.items():
        response = page.goto(f"{live_server.url}/projects/{evaluated.id}/evaluation/{path}")
        assert response.status == 200
        assert page.locator("nav.tabs a.active").count() == 1
        assert page.locator("text=recomputing").count() == 0
        screenshot(page, f"evaluation-{name}")
    page.goto(f"{live_server.url}/projects/{evaluated.id}/evaluation/preferences/")
    assert page.locator("table.table >> text=alpha-7b").count() >= 1
    assert page.locator("figure.chart svg circle").count() >= 6  # two interval charts, three models each


@pytest.mark.browser
def test_an_annotator_cannot_open_dashboards_but_compares_pairs_with_the_keyboard(
    browser_page, live_server, annotator, evaluated
):
    page = browser_page
    login_as(page, live_server.url, annotator.username, PASSWORD)
    for path in DASHBOARDS.values():
        response = page.goto(f"{live_server.url}/projects/{evaluated.id}/evaluation/{path}")
        assert response.status == 403
    page.goto(f"{live_server.url}/projects/{evaluated.id}/evaluation/pairs/")
    first_prompt = page.locator(".pair-prompt").inner_text()
    screenshot(page, "evaluation-pairwise-review")
    page.keyboard.press("1")
    page.wait_for_function(
        f"() => document.querySelector('.pair-prompt') && document.querySelector('.pair-prompt').innerText !== {first_prompt!r}"
    )
    assert PairwiseJudgment.objects.filter(rater__user=annotator).count() == 1
