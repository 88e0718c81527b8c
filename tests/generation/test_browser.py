"""Browser: a lead configures conditions and demos, previews prompts, starts a run against the local test
server through a real worker, watches progress, cancels and resumes, and browses the outputs; and runs the
offline generator with no endpoint. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from generation.models import GenerationRun, LLMEndpoint
from synthstudio.models import JobStatus
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


def fill_config(page, *, name: str, endpoint_label: str | None, count: int) -> None:
    page.fill("input[name=name]", name)
    if endpoint_label:
        page.select_option("select[name=endpoint]", label=endpoint_label)
    page.fill("textarea[name=dimensions]", "topic: plot, acting, music\nlength: short, long")
    page.fill("input[name=demo_count]", "1")
    page.select_option("select[name=demo_strategy]", "random")
    page.fill("input[name=target_count]", str(count))
    page.click("button[name=save]")


@pytest.mark.browser
@pytest.mark.worker
def test_a_lead_configures_previews_runs_cancels_resumes_and_browses_outputs(
    browser_page, live_server, celery_worker_process, lead, project, samples, openai_server
):
    page = browser_page
    openai_server.latency_ms = 150
    LLMEndpoint.objects.create(
        project=project,
        name="local",
        base_url=openai_server.base_url,
        model="test-model",
        max_concurrency=2,
        max_retries=1,
    )
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/")
    page.click("nav >> text=Generation")
    page.click("text=New config")
    fill_config(page, name="films", endpoint_label="local (test-model)", count=40)
    page.wait_for_selector("h1:has-text('films')")
    screenshot(page, "generation-config-detail")

    page.click("text=Preview prompts")
    page.wait_for_selector("text=Prompt 1")
    assert page.locator("pre.prompt").first.inner_text().count("- topic:") == 1
    assert page.locator("#estimate").inner_text().startswith("40")
    screenshot(page, "generation-preview")

    page.click("text=Back to the config")
    page.click("button[name=start]")
    page.wait_for_selector("#run-stats")
    page.wait_for_function(
        "() => Number(document.querySelector('#count-done').textContent) > 0", timeout=60_000
    )
    screenshot(page, "generation-run-progress")
    page.click("button[name=cancel]")
    page.wait_for_selector(".status-cancelled")
    run = GenerationRun.objects.get()
    assert run.status == JobStatus.CANCELLED and 0 < run.done < 40
    screenshot(page, "generation-run-cancelled")

    page.click("button[name=resume]")
    page.wait_for_selector(".status-succeeded", timeout=60_000)
    run.refresh_from_db()
    assert run.done == 40 and run.samples_created == 40
    assert (
        openai_server.request_count <= 40 + 2
    )  # at most the in-flight requests at the cancel are sent again
    screenshot(page, "generation-run-finished")

    page.click("main >> text=Outputs")
    page.wait_for_selector("#output-table")
    page.select_option("select[name=condition]", "topic=plot")
    page.wait_for_function(
        "() => !document.querySelector('#output-table').textContent.includes('topic: acting')"
    )
    page.locator("text=Details").first.click()
    page.wait_for_selector(".item-detail")
    assert "Raw output" in page.locator(".item-detail").inner_text()
    assert "condition=topic%3Dplot" in page.url  # the filter is in the address (hx-push-url)
    screenshot(page, "generation-outputs")


@pytest.mark.browser
def test_a_lead_runs_the_offline_generator_with_no_endpoint(
    browser_page, live_server, lead, project, samples
):
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/generation/configs/new/")
    fill_config(page, name="offline demo", endpoint_label=None, count=6)
    page.wait_for_selector("text=offline Markov generator (no endpoint configured)")
    page.click("button[name=start]")  # eager Celery here: the run finishes within the request
    page.wait_for_selector(".status-succeeded")
    assert "offline" in page.locator("#run-stats").inner_text()
    page.click("main >> text=Outputs")
    page.wait_for_selector("#output-table")
    assert page.locator("#output-table .badge.offline").count() == 6
    screenshot(page, "generation-offline-outputs")
