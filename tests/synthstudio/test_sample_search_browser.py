"""Browser (Chromium via Playwright): the lead filters the samples page as they type, ticks a sample and
excludes it from snapshots, then sends everything matching a filter to review."""

from __future__ import annotations

import pytest

from annotation.models import ReviewTask, TaskKind
from synthstudio.models import Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


@pytest.mark.browser
def test_a_lead_filters_samples_and_applies_bulk_actions(browser_page, live_server, lead, project, samples):
    from playwright.sync_api import expect

    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/samples/")
    table = page.locator("#sample-table")
    expect(table).to_contain_text("4 samples")

    page.fill("#id_q", "DULL")  # htmx swaps the table while typing
    expect(table).to_contain_text("1 sample")
    expect(table).to_contain_text("Dull, predictable and far too long.")
    expect(table).not_to_contain_text("A delight from start to finish.")
    screenshot(page, "samples-filtered")

    page.locator("#sample-table input[name=sample]").first.check()
    page.select_option("#bulk-actions select[name=action]", "exclude")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".messages")).to_contain_text("Excluded 1 sample from snapshots.")
    expect(table).to_contain_text("excluded")
    assert list(Sample.objects.filter(excluded_from_snapshots=True).values_list("text", flat=True)) == [
        "Dull, predictable and far too long."
    ]

    page.fill("#id_q", "")
    page.select_option("#id_excluded", "no")
    expect(table).to_contain_text("3 samples")
    page.select_option("#bulk-actions select[name=action]", "send_to_review")
    page.check("#bulk-actions input[value=all]")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".messages")).to_contain_text("Sent 3 samples to review.")
    screenshot(page, "samples-bulk-sent")
    assert ReviewTask.objects.filter(project=project, kind=TaskKind.MANUAL).count() == 3
    assert not ReviewTask.objects.filter(sample__excluded_from_snapshots=True).exists()
