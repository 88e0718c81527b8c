"""Browser: a lead previews a routing policy (htmx refresh on change), saves it and routes a batch, and sees
the labelling overview with its SVG charts. Screenshots under test-artifacts/."""

from __future__ import annotations

import pytest

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import ReviewTask
from annotation.routing.signals import signals_refresh
from synthstudio.models import LabelMethod, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


@pytest.mark.browser
def test_a_lead_previews_saves_and_routes_a_policy(browser_page, live_server, lead, project):
    samples = [Sample.objects.create(project=project, text=f"review {i}: <b>not bold</b>") for i in range(6)]
    readings = [
        LabelReading("positive", {"positive": p, "negative": 1 - p}, True, confidence=p)
        for p in (0.95, 0.55, 0.8, 0.6, 0.99, 0.7)
    ]
    llm_annotations_record(
        samples=samples,
        readings=readings,
        codebook=project.codebook,
        method=LabelMethod.OFFLINE,
        model_name="offline",
        run_ref="t",
    )
    signals_refresh(project=project)
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)

    page.goto(f"{live_server.url}/projects/{project.id}/labelling/")
    assert page.locator("svg").count() == 2
    assert page.get_by_text("offline", exact=True).first.is_visible()
    screenshot(page, "labelling-overview")

    page.goto(f"{live_server.url}/projects/{project.id}/routing/")
    page.select_option("select[name=budget_kind]", "count")
    page.fill("input[name=budget_count]", "2")
    page.fill("input[name=batch_size]", "2")
    page.select_option("select[name=strategy]", "least_confidence")  # a change: htmx refreshes the preview
    page.wait_for_selector("#routing-preview >> text=least confidence 0.45")
    assert page.locator("#routing-preview tbody tr").count() == 2
    assert "<b>" in page.locator("#routing-preview tbody").inner_text()  # text, not markup
    screenshot(page, "routing-preview")
    assert not ReviewTask.objects.exists()

    page.click("button[name=route_now]")
    page.wait_for_selector("text=routed 2 items")
    assert set(ReviewTask.objects.values_list("sample_id", flat=True)) == {samples[1].pk, samples[3].pk}
    page.goto(f"{live_server.url}/projects/{project.id}/routing/items/")
    assert page.locator("#routed-table tbody tr").count() == 2
    screenshot(page, "routed-items")
