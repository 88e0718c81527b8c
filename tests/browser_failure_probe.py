"""A browser test that fails on purpose, run only by tests/test_browser_failure_screenshots.py (in a pytest of
its own, with SYNTHSTUDIO_FAILURE_PROBE set; the file name keeps the suite from collecting it)."""

from __future__ import annotations

import os

import pytest


@pytest.mark.browser
def test_a_failing_page(browser_page, live_server):
    if not os.environ.get("SYNTHSTUDIO_FAILURE_PROBE"):
        pytest.skip("run by tests/test_browser_failure_screenshots.py only")
    browser_page.goto(f"{live_server.url}/login/")
    raise AssertionError("failing on purpose, for the screenshot")
