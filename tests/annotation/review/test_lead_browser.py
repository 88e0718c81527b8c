"""Browser: a lead clicks Review in the nav and reserves nothing; "Review items myself" is the explicit way in,
the held item says it is the lead's with a button that releases it, and the queue overview lists it."""

from __future__ import annotations

import pytest

from annotation.models import Assignment, AssignmentStatus, TaskKind
from annotation.review.queue import review_gold_rate_set, review_tasks_create
from synthstudio.models import HumanAnnotation
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


@pytest.mark.browser
def test_a_lead_reviews_only_on_purpose_and_releases_the_item_they_hold(
    browser_page, live_server, lead, project, samples
):
    from playwright.sync_api import expect

    review_gold_rate_set(project=project, gold_rate=0.0)
    review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test", float(-i)) for i, sample in enumerate(samples)],
        kind=TaskKind.ROUTED,
    )
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/")
    try:
        page.locator("nav.projectnav a", has_text="Review").first.click()
        expect(page.locator("h1")).to_have_text("Review")
        expect(page.locator("#items-waiting")).to_have_text("4")
        assert not Assignment.objects.filter(annotator=lead).exists()

        page.click("#review-myself")
        expect(page.locator("#item-text")).to_have_text(samples[0].text)
        expect(page.locator("#lead-reservation")).to_contain_text("reserved for you, not an annotator")
        page.wait_for_load_state("load")  # review.js (deferred) listens for the keys
        page.keyboard.press("1")  # answers, and the next item is reserved for the lead: still said so
        expect(page.locator("#item-text")).to_have_text(samples[1].text)
        expect(page.locator("#lead-reservation")).to_be_visible()
        assert HumanAnnotation.objects.get(sample=samples[0], annotator=lead).label == "positive"

        page.goto(f"{live_server.url}/projects/{project.id}/review/lead/")
        expect(page.locator("#reservation-table")).to_contain_text(lead.username)
        # back through the nav: the held item, not a new one
        page.locator("nav.projectnav a", has_text="Review").first.click()
        expect(page.locator("#item-text")).to_have_text(samples[1].text)
        assert Assignment.objects.filter(annotator=lead, status=AssignmentStatus.RESERVED).count() == 1

        page.click("#release-own")
        expect(page.locator(".messages")).to_contain_text("Released: the item is back in the queue.")
        expect(page.locator("#review-myself")).to_be_visible()
        assert not Assignment.objects.filter(annotator=lead, status=AssignmentStatus.RESERVED).exists()
    except BaseException:
        screenshot(page, "lead-review-failed")
        raise
