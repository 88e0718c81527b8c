"""The page around every project page: the nav grouped by stage (Build · Label · Review · Curate · Evaluate ·
Project) with the current stage marked, annotators seeing only what they use; the favicon; and texts the pages
used to get wrong (a template comment shown as text, "1 ratings", a help text whose "<dimension>" the browser
swallowed)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

STAGES = ["build", "label", "review", "curate", "evaluate", "project"]

PAGES_BY_STAGE = {
    "build": [
        "codebook_detail",
        "sample_list",
        "import_upload",
        "generation:home",
        "generation:outputs",
        "generation:endpoint_list",
        "generation:config_new",
    ],
    "label": ["annotation:labelling_overview", "annotation:routing_policy", "annotation:routed_items"],
    "review": [
        "annotation:review_queue",
        "annotation:review_history",
        "annotation:review_overview",
        "annotation:adjudication_list",
        "annotation:gold_items",
        "evaluation:pairwise_review",
    ],
    "curate": ["evaluation:curation", "evaluation:label_issues", "evaluation:labelstudio_import"],
    "evaluate": [
        "evaluation:metrics_overview",
        "evaluation:metrics_agreement",
        "evaluation:metrics_diversity",
        "evaluation:metrics_benchmark",
        "evaluation:metrics_preferences",
        "evaluation:pairwise_import",
        "evaluation:pairwise_from_generation",
    ],
    "project": ["project_detail", "members", "project_settings"],
}
LEAD_PAGES = [(stage, name) for stage, names in PAGES_BY_STAGE.items() for name in names]


class NavReader(HTMLParser):
    """The project nav's stage groups: name, whether marked current, their links (text, href, aria-current)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stages: list[dict] = []
        self._in_nav = False
        self._link: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "nav" and "projectnav" in (attributes.get("class") or ""):
            self._in_nav = True
        elif self._in_nav and tag == "div" and "nav-stage" in (attributes.get("class") or "").split():
            self.stages.append(
                {
                    "stage": (attributes.get("aria-labelledby") or "").removeprefix("nav-stage-"),
                    "current": attributes.get("aria-current"),
                    "links": [],
                }
            )
        elif self._in_nav and tag == "a" and self.stages:
            self._link = {
                "href": attributes.get("href"),
                "current": attributes.get("aria-current"),
                "text": "",
            }
            self.stages[-1]["links"].append(self._link)

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_nav = False
        elif tag == "a":
            self._link = None

    def handle_data(self, data):
        if self._link is not None:
            self._link["text"] += data.strip()


def nav_of(response) -> list[dict]:
    assert response.status_code == 200, response.status_code
    reader = NavReader()
    reader.feed(response.content.decode())
    return reader.stages


def url(name: str, project) -> str:
    return reverse(name, args=[project.id])


@pytest.mark.parametrize(("stage", "name"), LEAD_PAGES, ids=[name for _, name in LEAD_PAGES])
def test_a_lead_sees_every_stage_with_the_page_s_stage_and_link_marked(lead_client, project, stage, name):
    stages = nav_of(lead_client.get(url(name, project)))
    assert [group["stage"] for group in stages] == STAGES
    assert [group["stage"] for group in stages if group["current"]] == [stage]
    assert {group["current"] for group in stages} == {None, "step"}
    project_links = next(group for group in stages if group["stage"] == "project")["links"]
    assert [link["text"] for link in project_links][:3] == [
        "Overview",
        "Members",
        "Settings",
    ]  # the view passed role
    # the page's own link, where the nav has one, is the current page (and no other link is)
    here = url(name, project)
    hrefs = [link["href"] for group in stages for link in group["links"]]
    current = [link["href"] for group in stages for link in group["links"] if link["current"] == "page"]
    assert current == ([here] if here in hrefs else [])


def test_an_annotator_sees_only_what_they_use(annotator_client, project):
    stages = nav_of(annotator_client.get(url("annotation:review_queue", project)))
    assert [group["stage"] for group in stages] == ["review", "project"]
    assert [group["stage"] for group in stages if group["current"]] == ["review"]
    links = {link["href"]: link for group in stages for link in group["links"]}
    assert set(links) == {
        url(name, project)
        for name in (
            "annotation:review_queue",
            "annotation:review_history",
            "evaluation:pairwise_review",
            "codebook_detail",
            "project_detail",
        )
    }
    assert links[url("annotation:review_queue", project)]["current"] == "page"


@pytest.mark.parametrize(
    ("name", "stage"),
    [
        ("codebook_detail", "review"),
        ("annotation:review_history", "review"),
        ("evaluation:pairwise_review", "review"),
        ("project_detail", "project"),
    ],
)
def test_an_annotator_s_pages_mark_their_stage(annotator_client, project, name, stage):
    stages = nav_of(annotator_client.get(url(name, project)))
    assert [group["stage"] for group in stages if group["current"]] == [stage]


def test_every_page_links_the_favicon_and_shows_no_template_comment(annotator_client, project):
    assert finders.find("synthstudio/favicon.svg")
    for page in (reverse("home"), url("project_detail", project), url("annotation:review_queue", project)):
        body = annotator_client.get(page).content.decode()
        assert re.search(r'<link rel="icon" href="/static/synthstudio/favicon\.svg"', body), page
        assert "{#" not in body and "#}" not in body, page


def test_the_config_form_shows_the_dimension_placeholder_as_text(lead_client, project):
    body = lead_client.get(url("generation:config_new", project)).content.decode()
    assert "{{ &lt;dimension&gt; }} for each dimension" in body
    assert "<dimension>" not in body


def test_counts_of_one_are_singular(rf, lead, project):
    from django.template.loader import render_to_string

    request = rf.get(url("evaluation:metrics_overview", project))
    request.user = lead
    payload = {
        "counts": {"samples": 1, "human_answers": 1},
        "faithfulness": {
            "overall": {"n": 1, "share": 1.0, "low": 0.2, "high": 1.0},
            "ratings": {"A": 1, "B": 0, "C": 0, "D": 0},
        },
    }
    body = render_to_string(
        "evaluation/metrics/overview.html",
        {"project": project, "role": "lead", "payload": payload},
        request=request,
    )
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
    assert "1 rated or flagged answer " in text and "1 rated or flagged answers" not in text
    assert "1 sample " in text and "1 human answer " in text


@pytest.mark.parametrize("name", ["evaluation:curation", "evaluation:label_issues", "api:tokens"])
def test_the_main_buttons_look_like_buttons(lead_client, project, name):
    page = reverse(name) if name.startswith("api:") else url(name, project)
    body = lead_client.get(page).content.decode()
    buttons = re.findall(r"<button\b[^>]*>", body)
    assert buttons
    unstyled = [b for b in buttons if not re.search(r'class="[^"]*\b(button|link)\b', b)]
    assert unstyled == [], unstyled
