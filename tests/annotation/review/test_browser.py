"""Browser: the annotator works the queue with the keyboard only; the lead sees progress and adjudicates;
hostile sample text renders as text. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from annotation.models import TaskKind
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_gold_rate_set, review_next, review_tasks_create
from synthstudio.models import FinalSource, HumanAnnotation, HumanSource, LLMAnnotation, Project, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>"


def route(project, samples, *, required_answers=1):
    review_gold_rate_set(project=project, gold_rate=0.0)
    review_tasks_create(
        project=project,
        samples_with_reasons=[
            (sample, "browser test", float(100 - index)) for index, sample in enumerate(samples)
        ],
        kind=TaskKind.ROUTED,
        required_answers=required_answers,
    )


def record_dialogs(page) -> list[str]:
    fired: list[str] = []

    def on_dialog(dialog) -> None:
        fired.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return fired


def wait_for_item(page, text: str) -> None:
    """Wait until the item shows and htmx has finished swapping and settling it (a key pressed earlier would
    reach a form htmx has not taken over yet)."""
    page.locator("#item-text", has_text=text).wait_for()
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


@pytest.mark.browser
def test_it_lets_an_annotator_label_edit_flag_rate_and_undo_with_the_keyboard_only(
    browser_page, live_server, annotator, project, samples
):
    from playwright.sync_api import expect

    Project.objects.filter(pk=project.pk).update(ask_quality_rating=True)
    for sample in samples:
        LLMAnnotation.objects.create(
            sample=sample,
            label="negative",
            distribution={"negative": 0.7, "positive": 0.3},
            confidence=0.7,
            method="offline",
            rationale="Mentions of boredom.",
        )
    route(project, samples)
    page = browser_page
    dialogs = record_dialogs(page)
    login_as(page, live_server.url, annotator.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/")
    wait_for_item(page, samples[0].text)
    screenshot(page, "review-workbench-first-item")

    page.keyboard.press("1")  # label "positive" and submit
    wait_for_item(page, samples[1].text)
    expect(page.locator(".wb-saved")).to_contain_text("positive")

    page.keyboard.press("e")  # edit the text
    expect(page.locator("#edited-text")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Two hours I will happily never get back.")
    page.keyboard.press("Escape")
    screenshot(page, "review-workbench-editing")
    page.keyboard.press("2")
    wait_for_item(page, samples[2].text)

    page.keyboard.press("f")  # flag as unfaithful, rate B, accept the suggestion with Enter
    expect(page.locator("#flag-reason")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    expect(page.locator('input[data-rating="B"]')).to_be_checked()
    screenshot(page, "review-workbench-flag-and-rating")
    page.keyboard.press("Enter")
    wait_for_item(page, samples[3].text)

    page.keyboard.press("2")  # answer, then undo it: the same item comes back
    expect(page.locator(".wb-empty")).to_be_visible()
    page.keyboard.press("u")
    wait_for_item(page, samples[3].text)
    page.keyboard.press("1")
    expect(page.locator(".wb-empty")).to_be_visible()
    screenshot(page, "review-workbench-queue-done")

    answers = {a.sample_id: a for a in HumanAnnotation.objects.filter(annotator=annotator)}
    assert [answers[s.pk].label for s in samples] == ["positive", "negative", "negative", "positive"]
    assert samples[1].text_versions.get().text == "Two hours I will happily never get back."
    assert (answers[samples[2].pk].flag, answers[samples[2].pk].rating) == ("unfaithful", "B")
    assert answers[samples[2].pk].agreed_with_llm is True
    assert HumanAnnotation.objects.filter(sample=samples[3]).count() == 1
    assert all(answer.seconds_spent is not None for answer in answers.values())
    assert dialogs == []


@pytest.mark.browser
def test_it_shows_the_lead_progress_and_lets_them_adjudicate_a_disagreement(
    browser_page, live_server, lead, annotator, project, samples
):
    from playwright.sync_api import expect

    route(project, samples[:1], required_answers=2)
    review_answer_submit(
        assignment=review_next(project=project, annotator=annotator), label="positive", comment="fine"
    )
    review_answer_submit(assignment=review_next(project=project, annotator=lead), label="negative")
    page = browser_page
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/lead/")
    expect(page.locator("#annotator-table")).to_contain_text(annotator.username)
    expect(page.locator("#annotator-table")).to_contain_text("0%")  # they disagree on the one shared item
    screenshot(page, "review-lead-overview")

    page.get_by_role("link", name="Adjudicate (1)").click()
    page.get_by_role("link", name="Adjudicate", exact=True).click()
    page.select_option("#id_label", "positive")
    page.fill("#id_note", "Praise outweighs the complaint.")
    screenshot(page, "review-lead-adjudicating")
    page.get_by_role("button", name="Record the adjudicated label").click()
    expect(page.locator(".messages")).to_contain_text("Adjudicated: positive")

    sample = Sample.objects.get(pk=samples[0].pk)
    assert (sample.final_label, sample.final_source) == ("positive", FinalSource.ADJUDICATED)
    assert (
        HumanAnnotation.objects.get(source=HumanSource.ADJUDICATION).comment
        == "Praise outweighs the complaint."
    )


@pytest.mark.browser
def test_it_renders_hostile_sample_text_as_text_and_runs_nothing(
    browser_page, live_server, annotator, project
):
    from playwright.sync_api import expect

    hostile = Sample.objects.create(project=project, text=HOSTILE, fields={"title": HOSTILE})
    LLMAnnotation.objects.create(
        sample=hostile,
        label="negative",
        distribution={"negative": 1.0},
        confidence=1.0,
        method="offline",
        rationale=HOSTILE,
    )
    route(project, [hostile])
    page = browser_page
    dialogs = record_dialogs(page)
    login_as(page, live_server.url, annotator.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/")
    expect(page.locator("#item-text")).to_have_text(HOSTILE)
    expect(page.locator(".wb-rationale")).to_have_text(HOSTILE)
    assert page.locator("#workbench img").count() == 0
    assert page.locator("#workbench script").count() == 0
    screenshot(page, "review-hostile-text")
    page.keyboard.press("2")
    expect(page.locator(".wb-empty")).to_be_visible()
    assert dialogs == []
