"""Browser: a lead opens the curation page, watches the live counts, makes a snapshot and downloads exports."""

from __future__ import annotations

import json

import pytest

from annotation.review.final_labels import final_label_refresh
from synthstudio.models import LabelMethod, LLMAnnotation, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


@pytest.mark.browser
def test_the_lead_makes_a_snapshot_and_downloads_it(
    browser_page, live_server, lead, project, samples, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    for sample, name in zip(samples, ["positive", "negative", "positive", "negative"], strict=True):
        LLMAnnotation.objects.create(
            sample=sample, label=name, distribution={name: 0.9}, confidence=0.9, method=LabelMethod.IMPORTED
        )
        final_label_refresh(sample=sample)
    duplicate = Sample.objects.create(project=project, text=samples[0].text.upper())
    LLMAnnotation.objects.create(
        sample=duplicate,
        label="positive",
        distribution={"positive": 0.9},
        confidence=0.9,
        method=LabelMethod.IMPORTED,
    )
    final_label_refresh(sample=duplicate)
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/curation/")
    counts = page.locator("#curation-counts")
    assert "4 of 5 samples would be kept" in counts.inner_text()

    page.fill("input[name=max_chars]", "33")  # htmx refreshes the counts as the lead types
    page.wait_for_function("() => document.querySelector('#curation-counts').innerText.includes('2 of 5')")
    page.fill("input[name=max_chars]", "")
    page.wait_for_function("() => document.querySelector('#curation-counts').innerText.includes('4 of 5')")
    page.fill("input[name=note]", "browser snapshot")
    screenshot(page, "curation-filters")
    page.click("button[name=create_snapshot]")
    page.wait_for_url("**/curation/snapshots/jobs/*/")  # a worker builds it; the page polls its progress
    page.wait_for_selector("#open-snapshot")
    screenshot(page, "curation-snapshot-built")
    page.click("#open-snapshot")
    page.wait_for_url("**/curation/snapshots/1/")
    assert "browser snapshot" in page.content()

    with page.expect_download() as download_info:
        page.click("a[href$='/download/jsonl/']")
    rows = [json.loads(line) for line in open(download_info.value.path(), encoding="utf-8")]
    assert sorted(row["text"] for row in rows) == sorted(sample.text for sample in samples)

    page.click("button[name=export][value=parquet]")
    page.wait_for_selector("#download-export")
    with page.expect_download() as parquet_info:
        page.click("#download-export")
    assert open(parquet_info.value.path(), "rb").read(4) == b"PAR1"
    screenshot(page, "curation-export-done")
