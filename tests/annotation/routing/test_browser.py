"""Browser: "Save and route the next batch now" right after editing a field routes one batch. The edit's live
preview (hx-trigger="change") is queued behind an earlier preview still in flight and so goes out only after the
click; htmx then adds the clicked button to its values. The test holds the first preview and the form's submit
in the browser (Playwright request routing) to produce that order every time, instead of 1 run in 3."""

from __future__ import annotations

import pytest

from annotation.labelling.distributions import LabelReading
from annotation.labelling.services import llm_annotations_record
from annotation.models import ReviewTask
from synthstudio.models import LabelMethod, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


@pytest.mark.browser
def test_save_and_route_after_an_edit_routes_one_batch_and_says_how_many(
    browser_page, live_server, lead, project
):
    from playwright.sync_api import expect

    samples = [Sample.objects.create(project=project, text=f"review {i}") for i in range(12)]
    llm_annotations_record(
        samples=samples,
        readings=[
            LabelReading("positive", {"positive": p, "negative": 1 - p}, True, confidence=p)
            for p in (0.95, 0.55, 0.8, 0.6, 0.99, 0.7, 0.52, 0.9, 0.66, 0.75, 0.58, 0.85)
        ],
        codebook=project.codebook,
        method=LabelMethod.OFFLINE,
        model_name="offline",
        run_ref="t",
    )
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/routing/")
    page.select_option("select[name=budget_kind]", "count")
    page.fill("input[name=budget_count]", "10")
    page.fill("input[name=cold_start_size]", "0")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")

    held_previews, held_submits, previews_sent = [], [], []
    hold = {"previews": True}

    def intercept(route) -> None:
        request = route.request
        if request.method != "POST":
            route.continue_()
        elif request.headers.get("hx-request"):
            if hold["previews"]:
                held_previews.append(route)
            else:
                previews_sent.append(request)
                route.continue_()
        else:
            held_submits.append(route)

    page.route(f"**/projects/{project.id}/routing/", intercept)
    try:
        page.select_option("select[name=strategy]", "least_confidence")  # preview 1, held in flight
        page.wait_for_function("() => document.querySelector('form.htmx-request')")
        page.fill("input[name=batch_size]", "3")
        # the click blurs the field: its change queues preview 2 behind preview 1; then the form submits
        page.click("button[name=route_now]", no_wait_after=True)
        while not held_submits:
            page.wait_for_timeout(50)
        hold["previews"] = False
        held_previews.pop().continue_()
        while not previews_sent:  # the queued preview goes out after the click, as in the report
            page.wait_for_timeout(50)
        answered = previews_sent[0].response()  # the server has handled the late preview
        assert answered is not None and answered.status == 200
        held_submits.pop().continue_()
        expect(page.locator("text=Policy saved; routed 3 items to the review queue.")).to_be_visible()
    except BaseException:
        try:
            screenshot(page, "routing-route-now-failed")
        except Exception as error:  # a page stuck on a held request cannot be captured; the failure matters
            print(f"no screenshot: {error}")
        raise
    finally:
        page.unroute(f"**/projects/{project.id}/routing/")
    assert ReviewTask.objects.filter(project=project).count() == 3
    assert "route_now" not in (previews_sent[0].post_data or "")
    expect(page.locator(".card .big").first).to_have_text("3 / 10")
    screenshot(page, "routing-route-now-once")
