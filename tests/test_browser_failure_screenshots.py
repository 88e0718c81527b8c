"""Any browser test that fails leaves a screenshot of its page under test-artifacts/ (tests/browser.py's
browser_page fixture, through a pytest hook), without a test having to ask for one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS_DIR, CHROMIUM_PATH

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.browser
def test_a_failing_browser_test_leaves_a_screenshot_of_its_page():
    if not Path(CHROMIUM_PATH).exists():
        pytest.skip("no Chromium")
    expected = ARTIFACTS_DIR / "failed-test_a_failing_page.png"
    expected.unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/browser_failure_probe.py"],
        cwd=ROOT,
        env={**os.environ, "SYNTHSTUDIO_FAILURE_PROBE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "1 failed" in result.stdout, result.stdout[-3000:]
    assert expected.exists() and expected.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"screenshot of the failure: {expected}" in result.stdout
    expected.unlink()
