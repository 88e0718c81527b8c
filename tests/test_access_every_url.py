"""Access control on every project URL, found by walking the URLconf (a new view is covered automatically).

Outsiders get 404 on everything under a project; annotators get 403/404 on everything except the pages meant
for them; anonymous users are sent to log in.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Pages an annotator may open in a project they belong to.
ANNOTATOR_PAGES = {
    "project_detail",
    "codebook_detail",
    "annotation:review_queue",
    "annotation:review_answer",
    "annotation:review_skip",
    "annotation:review_answer_edit",
    "annotation:review_undo",
    "annotation:review_history",
    "evaluation:pairwise_review",
}


def project_urls() -> list[tuple[str, str]]:
    """(name, path template) of every URL with a project_id in it."""
    found: list[tuple[str, str]] = []

    def walk(patterns, prefix: str, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                ns = namespace
                if pattern.namespace:
                    ns = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
                walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
            elif isinstance(pattern, URLPattern) and "<int:project_id>" in prefix + str(pattern.pattern):
                name = f"{namespace}:{pattern.name}" if namespace else pattern.name
                found.append((name, prefix + str(pattern.pattern)))

    walk(get_resolver().url_patterns, "", "")
    return found


def concrete(path_template: str, project_id: int) -> str:
    path = path_template.replace("<int:project_id>", str(project_id))
    path = re.sub(r"<int:\w+>", "1", path)
    path = re.sub(r"<(?:str|slug):\w+>", "jsonl", path)
    return "/" + path.lstrip("^").rstrip("$")


URLS = project_urls()


def test_the_walk_finds_the_project_urls():
    names = {name for name, _ in URLS}
    assert {"project_detail", "members", "annotation:review_queue", "evaluation:metrics_overview"} <= names
    assert len(URLS) > 40


@pytest.mark.parametrize("name,template", URLS, ids=[name for name, _ in URLS])
def test_an_outsider_sees_nothing_of_a_project(outsider_client, project, name, template):
    url = concrete(template, project.id)
    for method in (outsider_client.get, outsider_client.post):
        assert method(url).status_code in {404, 405}, url


LEAD_URLS = [(name, template) for name, template in URLS if name not in ANNOTATOR_PAGES]


@pytest.mark.parametrize("name,template", LEAD_URLS, ids=[name for name, _ in LEAD_URLS])
def test_an_annotator_cannot_reach_lead_pages(annotator_client, project, name, template):
    url = concrete(template, project.id)
    for method in (annotator_client.get, annotator_client.post):
        assert method(url).status_code in {403, 404, 405}, url


@pytest.mark.parametrize("name,template", URLS, ids=[name for name, _ in URLS])
def test_anonymous_users_are_sent_to_log_in(client, project, name, template):
    url = concrete(template, project.id)
    response = client.get(url)
    if name.startswith("api:"):
        assert response.status_code == 401, url  # the API answers with a status, not a login page
        return
    assert response.status_code in {302, 404, 405}, url
    if response.status_code == 302:
        assert response["Location"].startswith("/login/")
