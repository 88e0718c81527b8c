"""Browser: a lead logs in through the real form and sees their projects."""

from __future__ import annotations

import pytest

from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


@pytest.mark.browser
def test_it_logs_the_lead_in_and_lists_their_project(browser_page, live_server, lead, project):
    login_as(browser_page, live_server.url, lead.username, PASSWORD)

    assert browser_page.get_by_role("link", name="Film reviews").is_visible()
    assert screenshot(browser_page, "core-home-after-login").exists()
