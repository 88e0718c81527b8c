"""Browser: a lead sets a quality target (ε, 1 − α) on the routing page, an annotator answers the calibration
sample in the review workbench, the threshold batch appears in the queue by itself, the certificate appears on
the routing page, and the snapshot the lead then makes shows it on its page and in the exported dataset card."""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import LabelCertificate, ReviewTask
from annotation.review.queue import review_gold_rate_set
from annotation.routing import quality_target
from synthstudio.models import LabelMethod, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD

N = 60


def reviews_with_truth(project) -> dict[int, str]:
    """N samples the offline labeller called "positive" with confidences from 0.5 to 1; the truth is
    "negative" on every third item below 0.75 and every fifth below 0.85 (none above). {sample id: truth}"""
    samples = Sample.objects.bulk_create(
        Sample(project=project, text=f"Film review {i}: <b>not bold</b> & fine") for i in range(N)
    )
    confidences = [0.5 + 0.5 * i / N for i in range(N)]
    llm_annotations_record(
        samples=samples,
        readings=[
            LabelReading("positive", {"positive": c, "negative": 1 - c}, True, confidence=c)
            for c in confidences
        ],
        codebook=project.codebook,
        method=LabelMethod.OFFLINE,
        model_name="offline",
        run_ref="t",
    )
    truth = {}
    for i, (sample, c) in enumerate(zip(samples, confidences, strict=True)):
        wrong = (c < 0.75 and i % 3 == 0) or (c < 0.85 and i % 5 == 0)
        truth[sample.pk] = "negative" if wrong else "positive"
    return truth


def answer_in_workbench(page, truth: dict[int, str], count: int) -> list[int]:
    """Answer `count` items with the truth (clicking the label); returns their sample ids."""
    answered = []
    for _ in range(count):
        title = page.locator("#wb-item-title").inner_text()
        sample_id = int(re.search(r"item (\d+)", title, re.IGNORECASE).group(1))
        page.click(f"button.wb-label[value={truth[sample_id]}]")
        page.wait_for_function(
            "(title) => { const t = document.querySelector('#wb-item-title');"
            " return (!t || t.innerText !== title) && !document.querySelector('.htmx-request'); }",
            arg=title,
        )
        answered.append(sample_id)
    return answered


def switch_user(page, live_server_url: str, username: str) -> None:
    """Leave the page first (no request of the last page still in flight sets a cookie again), then log in."""
    page.goto("about:blank")
    page.context.clear_cookies()
    login_as(page, live_server_url, username, PASSWORD)


@pytest.mark.browser
def test_a_quality_target_routes_calibration_then_the_threshold_batch_then_certifies_the_snapshot(
    browser_page, live_server, lead, annotator, project, settings, tmp_path, monkeypatch
):
    from playwright.sync_api import expect

    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr(quality_target, "_fresh_seed", lambda: 11)  # the calibration draw: fixed here
    review_gold_rate_set(project=project, gold_rate=0.0)
    truth = reviews_with_truth(project)
    page = browser_page

    # the lead sets the quality target and routes the calibration sample
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/routing/")
    page.select_option("select[name=strategy]", "quality_target")
    page.fill("input[name=cold_start_size]", "0")
    page.fill("input[name=annotators_per_item]", "1")
    page.click("#quality-target-fields summary")
    page.fill("input[name=target_error]", "0.2")
    page.fill("input[name=target_confidence]", "0.8")
    page.fill("input[name=calibration_size]", "25")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    page.click("button[name=route_now]")
    calibration = ReviewTask.objects.filter(project=project, is_audit=True)
    drawn = calibration.count()
    expect(page.locator(".messages")).to_contain_text(f"routed {drawn} items to the review queue")
    expect(page.locator("#quality-calibration")).to_contain_text(
        f"0 / {drawn} items answered (25 random draws)"
    )
    screenshot(page, "quality-target-calibration-routed")

    # the annotator answers the calibration sample; the threshold batch follows by itself
    switch_user(page, live_server.url, annotator.username)
    page.goto(f"{live_server.url}/projects/{project.id}/review/")
    page.locator("#item-text").wait_for()
    assert "<b>not bold</b>" in page.locator("#item-text").inner_text()  # sample text shows as text
    answered = answer_in_workbench(page, truth, drawn)
    assert set(answered) == set(calibration.values_list("sample_id", flat=True))
    threshold_batch = ReviewTask.objects.filter(project=project, is_audit=False)
    assert threshold_batch.exists() and threshold_batch.count() + drawn < N
    expect(page.locator("#item-text")).to_be_visible()  # the threshold batch is in the queue now
    title = page.locator("#wb-item-title").inner_text()
    assert int(re.search(r"item (\d+)", title, re.IGNORECASE).group(1)) in set(
        threshold_batch.values_list("sample_id", flat=True)
    )
    screenshot(page, "quality-target-threshold-batch-in-queue")
    answer_in_workbench(page, truth, threshold_batch.count())
    expect(page.locator(".wb-empty")).to_be_visible()

    # the certificate on the routing page
    certificate = LabelCertificate.objects.get(project=project)
    switch_user(page, live_server.url, lead.username)
    page.goto(f"{live_server.url}/projects/{project.id}/routing/")
    statement = page.locator("#certificate-statement")
    expect(statement).to_contain_text(
        "At most 20.0% of the final labels are wrong, with probability at least 80%"
    )
    expect(statement).to_contain_text(f"humans labelled {certificate.human_share:.1%} of {N} items")
    expect(statement).to_contain_text("offline stand-in")
    expect(page.locator("#certificate-agreement")).to_contain_text("reviewer agreement not measured")
    expect(page.locator("#quality-certificate .badge.offline")).to_be_visible()
    expect(page.locator("#quality-projection")).to_be_visible()
    screenshot(page, "quality-target-certificate")
    text = statement.inner_text()

    # a snapshot stores it: on its page and in the exported dataset card
    page.goto(f"{live_server.url}/projects/{project.id}/curation/")
    page.click("button[name=create_snapshot]")
    page.wait_for_url("**/curation/snapshots/jobs/*/")
    page.wait_for_selector("#open-snapshot")
    page.click("#open-snapshot")
    page.wait_for_url("**/curation/snapshots/1/")
    expect(page.locator("#label-certificate .certificate-statement")).to_have_text(text)
    screenshot(page, "quality-target-snapshot-certificate")
    page.click("button[name=export][value=hf]")
    page.wait_for_selector("#download-export")
    with page.expect_download() as download:
        page.click("#download-export")
    with zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read())) as archive:
        card_name = next(name for name in archive.namelist() if name.endswith("README.md"))
        card = archive.read(card_name).decode()
    assert "## Label certificate" in card and text in card
