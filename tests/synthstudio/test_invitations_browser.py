"""Browser (Chromium via Playwright): the lead path of issue 14 — a lead invites a teammate, the new annotator
opens the link, sets a password, logs in, answers an item of the review queue, and the lead sees the answer.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from annotation.models import TaskKind
from annotation.review.queue import review_gold_rate_set, review_tasks_create
from synthstudio.models import HumanAnnotation, Membership, Role
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD

NEW_PASSWORD = "violet-lantern-harbour-7"


@pytest.mark.browser
def test_a_lead_invites_a_new_annotator_who_answers_and_the_lead_sees_it(
    browser_page, live_server, lead, project, samples, settings
):
    from playwright.sync_api import expect

    settings.EMAIL_HOST = ""  # no mail server: the members page shows the link to copy
    review_gold_rate_set(project=project, gold_rate=0.0)
    review_tasks_create(
        project=project, samples_with_reasons=[(samples[0], "browser test", 1.0)], kind=TaskKind.ROUTED
    )
    page = browser_page

    # the lead invites by email
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/members/")
    page.fill("#id_invitee", "nina@example.org")
    page.select_option("#invite-form select[name=role]", "annotator")
    page.get_by_role("button", name="Invite").click()
    link = page.locator("#invitation-link").input_value()
    expect(page.locator("#pending-invitations")).to_contain_text("nina@example.org")
    screenshot(page, "invitation-made")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/**")

    # the new annotator opens the link and sets a username and password
    page.goto(link)
    expect(page.get_by_role("heading", name=f"Join “{project.name}”")).to_be_visible()
    page.fill("#id_username", "nina_new")
    page.fill("#id_password1", NEW_PASSWORD)
    page.fill("#id_password2", NEW_PASSWORD)
    screenshot(page, "invitation-signup")
    page.get_by_role("button", name="Create account and join").click()
    expect(page.locator(".messages")).to_contain_text(f"Welcome to {project.name}: you joined as annotator")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/**")

    # … logs in with the new password and answers an item of the queue by keyboard
    login_as(page, live_server.url, "nina_new", NEW_PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/")
    page.locator("#item-text", has_text=samples[0].text).wait_for()
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )
    page.keyboard.press("1")  # "positive"
    expect(page.locator(".wb-empty")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/**")

    # the lead sees the answer
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/lead/")
    row = page.locator("#annotator-table tr", has_text="nina_new")
    expect(row.locator("td").nth(2)).to_have_text("1")  # answered
    screenshot(page, "invitation-lead-sees-answer")
    page.goto(f"{live_server.url}/projects/{project.id}/samples/?q=delight")
    expect(page.locator("#sample-table")).to_contain_text("positive")

    membership = Membership.objects.get(project=project, user__username="nina_new")
    assert membership.role == Role.ANNOTATOR
    answer = HumanAnnotation.objects.get(annotator=membership.user)
    assert (answer.sample_id, answer.label) == (samples[0].pk, "positive")
