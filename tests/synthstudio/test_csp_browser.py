"""Browser (Chromium via Playwright): the Content-Security-Policy is enforced, the shared fixture hears every
violation, and what used to be inline code still works from static files."""

from __future__ import annotations

import pytest

from tests.browser import login_as, watch_csp_violations
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_chromium_blocks_inline_code_and_the_fixture_reports_it(chromium_browser, live_server, lead, project):
    context = chromium_browser.new_context(base_url=live_server.url)
    violations = watch_csp_violations(context)
    try:
        page = context.new_page()
        login_as(page, live_server.url, lead.username, PASSWORD)
        page.goto(f"/projects/{project.id}/evaluation/")
        page.wait_for_load_state("networkidle")
        assert violations == []
        assert page.locator("head style").count() == 0  # htmx was told not to inject its indicator <style>

        page.evaluate(
            """() => {
                const script = document.createElement("script");
                script.textContent = "window.inlineRan = true";
                document.head.appendChild(script);
            }"""
        )
        page.wait_for_function("() => true")  # let the console message arrive

        assert page.evaluate("window.inlineRan === true") is False
        page.wait_for_timeout(200)
        assert any("script-src" in message for message in violations), violations
    finally:
        context.close()


def test_the_margin_choice_still_submits_itself_without_an_inline_handler(
    browser_page, live_server, lead, project
):
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"/projects/{project.id}/evaluation/")

    with page.expect_navigation():
        page.select_option("#margin", "0.05")

    assert "margin=0.05" in page.url
    assert page.locator("#margin").input_value() == "0.05"
