"""Every page carries the Content-Security-Policy and passes it: no inline <script> or <style>, no on*= handler,
no style= attribute, no javascript: URL, no htmx hx-on / js: evaluation.

The pages are found by crawling the demo project (`manage.py demo`: runs, snapshots, a judge run, queued review
items) as its lead and as an annotator, following every same-site href and hx-get, so a new page or fragment is
checked as soon as something links to it. The browser tests check the same in Chromium (tests/browser.py fails a
test on any CSP violation in the console).
"""

from __future__ import annotations

import io
import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urldefrag, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from synthstudio.management.commands.demo import PROJECT_NAME as DEMO_PROJECT_NAME
from synthstudio.models import Project

EXPECTED_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "object-src": "'none'",
}
# Not followed: logging out ends the crawl's session, the admin is Django's own, the token API answers JSON and
# starts export jobs on GET, downloads and static files are files.
SKIPPED = re.compile(r"^/(logout/|admin/|api/projects/|static/)|/download/|\.csv$|/csv/")
MAX_PAGES = 250
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "hx-get", "hx-post"}


class InlineCodeFinder(HTMLParser):
    """Collects everything in a page that a CSP without 'unsafe-inline'/'unsafe-eval' refuses, and its links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")
        for name, value in attrs:
            value = value or ""
            if re.fullmatch(r"on[a-z]+", name):
                self.problems.append(f"<{tag} {name}=…> handler")
            elif name == "style":
                self.problems.append(f"<{tag} style={value!r}>")
            elif name.startswith("hx-on") or name == "hx-vars" or value.strip().startswith("js:"):
                self.problems.append(f"<{tag} {name}={value!r}> (htmx eval)")
            elif name in URL_ATTRIBUTES and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if name in {"href", "hx-get"} and value.startswith("/") and not value.startswith("//"):
                self.links.append(urldefrag(value)[0])

    handle_startendtag = handle_starttag


def inspect(html: str) -> InlineCodeFinder:
    finder = InlineCodeFinder()
    finder.feed(html)
    finder.close()
    return finder


def policy(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def crawl(client: Client, start: list[str]) -> dict[str, tuple[int, list[str]]]:
    """Breadth-first over same-site links: {path: (status, problems)} for every HTML page reached."""
    seen: dict[str, tuple[int, list[str]]] = {}
    queue = deque(start)
    queued = set(start)
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        response = client.get(path)
        if not response.get("Content-Type", "").startswith("text/html") or response.streaming:
            continue
        finder = inspect(response.content.decode())
        problems = list(finder.problems)
        if policy(response) != EXPECTED_POLICY:
            problems.append(f"Content-Security-Policy: {response.headers.get('Content-Security-Policy')!r}")
        seen[path] = (response.status_code, problems)
        for link in finder.links:
            if link not in queued and not SKIPPED.search(urlparse(link).path):
                queued.add(link)
                queue.append(link)
    return seen


@pytest.fixture
def demo(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path  # the demo keeps its logins under var/
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("demo", stdout=io.StringIO())
    users = get_user_model().objects
    return users.get(username="demo_lead"), users.get(username="demo_ann1")


def test_every_page_of_the_demo_carries_the_policy_and_passes_it(demo):
    lead, annotator = demo
    as_lead, as_annotator = Client(), Client()
    as_lead.force_login(lead)
    as_annotator.force_login(annotator)
    project_ids = list(lead.memberships.values_list("project_id", flat=True))
    assert len(project_ids) == 2  # the main demo and the certified-labels demo
    project_id = Project.objects.get(name=DEMO_PROJECT_NAME).pk

    pages = crawl(as_lead, ["/", *(f"/projects/{project_id}/" for project_id in project_ids)])
    pages |= {f"annotator {path}": result for path, result in crawl(as_annotator, ["/"]).items()}

    failures = {path: problems for path, (_, problems) in pages.items() if problems}
    assert failures == {}
    ok = {path for path, (status, _) in pages.items() if status == 200}
    assert len(ok) >= 40, sorted(ok)
    for must in (
        reverse("generation:home", args=[project_id]),
        reverse("annotation:labelling_overview", args=[project_id]),
        reverse("annotation:review_overview", args=[project_id]),
        reverse("evaluation:curation", args=[project_id]),
        reverse("evaluation:metrics_overview", args=[project_id]),
        reverse("evaluation:metrics_agreement", args=[project_id]),
        reverse("evaluation:metrics_preferences", args=[project_id]),
        reverse("members", args=[project_id]),
        f"annotator {reverse('annotation:review_queue', args=[project_id])}",
    ):
        assert must in ok, must
    assert any("/generation/runs/" in path for path in ok) and any("/snapshots/" in path for path in ok)
    workbench = as_annotator.get(reverse("annotation:review_queue", args=[project_id])).content.decode()
    assert 'id="workbench"' in workbench and 'data-item=""' not in workbench  # an item is in front of them


def test_pages_without_a_login_and_error_pages_pass_the_policy(client, lead, annotator, project):
    responses = {
        "login": client.get(reverse("login")),
        "404": client.get("/no-such-page/"),
        "lockout": None,
        "csrf failure": Client(enforce_csrf_checks=True).post(
            reverse("login"), {"username": "x", "password": "y"}
        ),
    }
    for _ in range(10):
        responses["lockout"] = client.post(
            reverse("login"), {"username": lead.username, "password": "wrong-one"}
        )
    client.force_login(annotator)
    responses["403"] = client.get(reverse("members", args=[project.id]))

    statuses = [responses[name].status_code for name in ("login", "404", "lockout", "csrf failure", "403")]
    assert statuses == [200, 404, 429, 403, 403]
    for name, response in responses.items():
        assert policy(response) == EXPECTED_POLICY, name
        assert inspect(response.content.decode()).problems == [], name


def test_the_finder_sees_every_kind_of_inline_code():
    html = """<script>alert(1)</script><script src="/static/x.js"></script><style>p{}</style>
    <button onclick="go()">x</button><p style="color:red">y</p><a href="javascript:go()">z</a>
    <div hx-on:click="go()"></div><div hx-vals='js:{a: 1}'></div><p>style= and onclick= in text are fine</p>"""

    assert inspect(html).problems == [
        "inline <script>",
        "inline <style>",
        "<button onclick=…> handler",
        "<p style='color:red'>",
        "<a href='javascript:go()'>",
        "<div hx-on:click='go()'> (htmx eval)",
        "<div hx-vals='js:{a: 1}'> (htmx eval)",
    ]
