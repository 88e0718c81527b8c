"""Shared Playwright fixtures for browser tests (registered in tests/conftest.py via pytest_plugins).

Usage in any test file:

    @pytest.mark.browser
    def test_it_shows_the_codebook(browser_page, live_server, lead, project):
        login_as(browser_page, live_server.url, lead.username, PASSWORD)
        browser_page.goto(f"{live_server.url}/projects/{project.id}/codebook/")
        screenshot(browser_page, "codebook")

Chromium is Debian's /usr/bin/chromium (no browser download). Where it is missing the tests are skipped with
a reason, except in CI (env CI=true), where a missing browser is a failure.

Every page is served with the Content-Security-Policy (no eval): give `page.wait_for_function` a function,
"() => document.querySelector(...)", not a bare expression, which Playwright evals on every poll and the policy
refuses. `browser_page` fails a test on any CSP violation reported in the console.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; Django then refuses ORM calls from that thread
# (SynchronousOnlyOperation) although they are plain synchronous calls. Fixtures and tests touch the ORM
# between page actions, so allow it for the test process.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "test-artifacts"
DEFAULT_TIMEOUT_MS = 15_000


def _require_chromium() -> None:
    if Path(CHROMIUM_PATH).exists():
        return
    reason = f"Chromium is not installed at {CHROMIUM_PATH} (apt-get install chromium)."
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} CI=true: browser tests must run in CI.")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator:
    """One Chromium per test session (launching costs ~1 s); each test gets a fresh context."""
    _require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("The playwright package is not installed.")
        pytest.skip("The playwright package is not installed (pip install playwright).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


# Reports every Content-Security-Policy violation to the console, where the fixture below collects it (Chromium
# also logs "Refused to ..." itself; the event covers what it reports only to the page). Injected by Playwright
# through the DevTools protocol, so the policy does not block this script itself.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline code"}`
    + ` at ${event.sourceFile || document.location.href}:${event.lineNumber}`);
});
"""


def csp_violation(message_text: str) -> bool:
    return (
        message_text.startswith(("CSP violation:", "Refused to")) or "Content Security Policy" in message_text
    )


def watch_csp_violations(context) -> list[str]:
    """The console messages of every page of `context` that report a CSP violation (the list fills as they come)."""
    violations: list[str] = []
    context.add_init_script(_REPORT_CSP_VIOLATIONS)
    context.on(
        "console", lambda message: violations.append(message.text) if csp_violation(message.text) else None
    )
    return violations


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so browser_page's teardown knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def browser_page(chromium_browser, live_server, request) -> Iterator:
    """A fresh Playwright Page (own cookies) for a test that also has the live_server running.

    A test fails if any page of its browser context violates the Content-Security-Policy: the policy blocks inline
    code silently for the user (a button that does nothing), so every browser test doubles as a CSP check.
    When the test fails, the page as it was is saved as test-artifacts/failed-<test name>.png.
    """
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    violations = watch_csp_violations(context)
    page = context.new_page()
    try:
        yield page
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            _screenshot_of_failure(page, request.node.name)
    finally:
        context.close()
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(dict.fromkeys(violations)))


def _screenshot_of_failure(page, test_name: str) -> None:
    try:
        path = screenshot(page, f"failed-{test_name}")
    except Exception as error:  # a page stuck on a request may not be capturable; the test's failure matters
        print(f"no screenshot of the failure: {error}")
    else:
        print(f"screenshot of the failure: {path}")


def login_as(page, live_server_url: str, username: str, password: str) -> None:
    """Log in through the real login form and wait until the project list shows."""
    page.goto(f"{live_server_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("main form button")
    page.wait_for_load_state("domcontentloaded")
    if "/login/" in page.url:
        raise AssertionError(f"Logging in as {username!r} failed: still on {page.url}")


def screenshot(page, name: str) -> Path:
    """Save a full-page PNG under test-artifacts/ and return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "screenshot"
    path = ARTIFACTS_DIR / f"{safe_name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
