"""Browser: Dawid–Skene from the UI. On the Review queue overview a lead switches the way human answers are
combined from majority vote to Dawid–Skene; each annotator's estimated accuracy appears, and the split pair
that majority vote sent to adjudication (keeping the LLM's label meanwhile) now takes the reliable annotator's
label. No LLM is involved: the answers are the humans'."""

from __future__ import annotations

import pytest

from annotation.models import LabelAggregation, ReviewSettings
from synthstudio.models import FinalSource
from tests.annotation.review.test_label_aggregation import crowd  # noqa: F401 - the fixture
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


@pytest.mark.browser
def test_a_lead_switches_to_dawid_skene_and_the_final_labels_follow_the_reliable_annotator(
    browser_page,
    live_server,
    lead,
    project,
    crowd,  # noqa: F811 - the imported fixture
):
    sample, truth = crowd["samples"][-1]
    assert (sample.final_label, sample.final_source) == ("negative", FinalSource.LLM)
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/lead/")
    assert "not estimated yet" in page.locator("main").inner_text()
    form = page.locator("#aggregation-form")
    form.locator("select[name=method]").select_option(LabelAggregation.DAWID_SKENE)
    form.locator("button").click(no_wait_after=True)
    page.wait_for_selector("text=Dawid–Skene as of", timeout=120_000)
    settings = ReviewSettings.objects.get(project=project)
    assert settings.label_aggregation == LabelAggregation.DAWID_SKENE
    sample.refresh_from_db()
    assert (sample.final_label, sample.final_source) == (truth, FinalSource.HUMAN)
    accuracy = settings.annotator_reliability["accuracy"]
    for user in (crowd["best"], crowd["guesser"]):
        row = page.locator("tr", has_text=user.username)
        shown = row.locator(".estimated-accuracy").inner_text()
        assert shown.startswith(f"{100 * accuracy[str(user.pk)]:.0f}%"), shown
    assert accuracy[str(crowd["best"].pk)] > accuracy[str(crowd["guesser"].pk)] + 0.2
    assert page.locator("select[name=method]").input_value() == LabelAggregation.DAWID_SKENE
    screenshot(page, "review-dawid-skene")
