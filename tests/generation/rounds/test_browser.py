"""Browser: automatic rounds from the UI. A lead sets a config to two rounds with a corrected-share target in
the config form and starts one run; the loop labels and routes the round by itself, an annotator answers the
routed items by keyboard in the review queue, and the last answer starts round two with moved weights — no
further click. The run page shows both rounds on the timeline. Once with the offline generator, once with the
local OpenAI-compatible test server as the generator (Celery is eager here: each step runs in the request that
triggers it)."""

from __future__ import annotations

import time

import pytest

from annotation.models import ReviewTask, RoutingPolicy
from annotation.review.queue import review_gold_rate_set
from generation.models import GenerationConfig, GenerationRun, LLMEndpoint, RoundState
from synthstudio.models import HumanAnnotation
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


def wait_until(condition, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.browser
@pytest.mark.parametrize("generator", ["offline", "test server"])
def test_a_lead_sets_two_rounds_in_the_form_and_the_loop_runs_on_by_itself(
    browser_page, live_server, lead, annotator, project, samples, openai_server, generator
):
    RoutingPolicy.objects.create(
        project=project, strategy="random", budget_share=1.0, batch_size=10_000, annotators_per_item=1
    )
    review_gold_rate_set(project=project, gold_rate=0.0)
    if generator == "test server":
        LLMEndpoint.objects.create(
            project=project, name="local", base_url=openai_server.base_url, model="test-model", max_retries=1
        )
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/generation/configs/new/")
    page.fill("input[name=name]", "looped")
    if generator == "test server":
        page.select_option("select[name=endpoint]", label="local (test-model)")
    page.fill("textarea[name=dimensions]", "topic: plot, acting")
    page.fill("input[name=target_count]", "4")
    page.fill("input[name=rounds]", "2")
    page.fill("input[name=rounds_target_corrected_share]", "0.05")
    page.click("button[name=save]")  # (a full-page screenshot just before this click made it miss)
    page.wait_for_selector("h1:has-text('looped')")
    assert "2 rounds, stopping early once humans correct under 5 % of a round" in page.content()
    config = GenerationConfig.objects.get(name="looped")
    assert (config.rounds, config.rounds_target_corrected_share) == (2, 0.05)
    assert (config.endpoint is None) == (generator == "offline")

    # generate → LLM-label → route, all in this request (eager Celery): it may take a while on a busy machine
    page.click("button[name=start]", no_wait_after=True)
    page.wait_for_selector("#round-1", timeout=180_000)
    first = GenerationRun.objects.get()
    assert first.round_state == RoundState.AWAITING_ANSWERS, first.round_stop_reason
    assert "Waiting for human answers" in page.locator("#round-1").inner_text()
    if generator == "test server":
        assert openai_server.request_count >= 4
    routed = ReviewTask.objects.filter(sample__generation_items__run=first, is_open=True).distinct().count()
    assert routed >= 1

    page.context.clear_cookies()
    login_as(page, live_server.url, annotator.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/")
    page.wait_for_load_state("load")  # review.js (deferred) listens for the keys
    answered = 0
    # the queue also holds the project's seed samples (routed by the same policy): answer until round one's
    # routed items are all answered and the loop moves on
    while GenerationRun.objects.get(pk=first.pk).round_state == RoundState.AWAITING_ANSWERS:
        assert answered < 20, "round one still waits after 20 answers"
        page.locator("#item-text").wait_for()
        page.wait_for_function(
            "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
        )
        page.keyboard.press("1")
        answered += 1
        wait_until(
            lambda n=answered: HumanAnnotation.objects.filter(annotator=annotator).count() >= n, seconds=180
        )
        wait_until(  # the answer's request (with the next round, when it was the last) has finished
            lambda: page.evaluate("() => !document.querySelector('.htmx-request')"), seconds=180
        )
    # the last answer closed round one: the loop started round two by itself
    second = wait_until(lambda: GenerationRun.objects.filter(previous_round=first).first(), seconds=180)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.round_state == RoundState.CONTINUED and first.round_report["reviewed"] == routed
    assert second.round_number == 2 and second.condition_weights == first.round_report["next_weights"]
    assert second.round_state == RoundState.AWAITING_ANSWERS, second.round_stop_reason

    page.context.clear_cookies()
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/generation/runs/{first.pk}/")
    timeline = page.locator("#rounds-timeline")
    assert "Next round started" in timeline.locator("#round-1").inner_text()
    assert f"humans reviewed {routed}" in timeline.locator("#round-1").inner_text()
    assert "Waiting for human answers" in timeline.locator("#round-2").inner_text()
    assert timeline.locator("#round-1 table td", has_text="acting").count() == 1
    screenshot(page, f"rounds-timeline-{generator}")
