"""Browser: the annotator's whole path through the review workbench by keyboard only, checking in the database
what each key stored. Letters typed into a text box (skip reason, comment, flag note, corrected text) are
typing, never shortcuts: "cannot judge" must not open the comment panel (c), rate the item (a, d), undo (u) or
skip (s). On a failure the page at the failing step is saved under test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from annotation.models import Assignment, AssignmentStatus, SampleTextVersion, TaskKind
from annotation.review import queue as review
from synthstudio.models import HumanAnnotation, LLMAnnotation, Project, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD

TEXTS = [
    "A delight from start to finish.",
    "Two hours I will never get back.",
    "The acting was superb and the score moving.",
    "Dull, predictable and far too long.",
    "I laughed, I cried, I checked my watch.",
    "Sarcastic praise for a film that tries hard.",
    "Neither good nor bad, just there.",
]
EDITED = "Sadly, a dull script; I could not stay awake."
FLAG_NOTE = "duplicate of a review further up, copied"
COMMENT = "cannot judge: sarcasm? ask a lead"
SKIP_REASON = "sarcasm I cannot decode"
NO_REASON = "no reason given"  # the skip form's data-default-reason


class Steps:
    """Names the step a test is in, so a failure's screenshot says where it happened."""

    current = "start"

    def __call__(self, name: str) -> None:
        self.current = name


@contextmanager
def screenshot_on_failure(page, test_name: str) -> Iterator[Steps]:
    """On a failure, test-artifacts/<test_name>-failed-at-<step>.png (tests/browser.py's screenshot)."""
    steps = Steps()
    try:
        yield steps
    except BaseException:
        try:
            path = screenshot(page, f"{test_name}-failed-at-{steps.current}")
            print(f"screenshot of the failure: {path}")
        except Exception as error:  # the page may be gone; the original failure matters
            print(f"no screenshot: {error}")
        raise


def route(project, samples) -> None:
    review.review_gold_rate_set(project=project, gold_rate=0.0)
    review.review_tasks_create(
        project=project,
        samples_with_reasons=[
            (sample, "keyboard test", float(100 - index)) for index, sample in enumerate(samples)
        ],
        kind=TaskKind.ROUTED,
        required_answers=1,
    )


def wait_for_item(page, text: str) -> None:
    """The item shows and htmx has finished swapping and settling it."""
    page.locator("#item-text", has_text=text).wait_for()
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


def settled(page) -> None:
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


@pytest.mark.browser
def test_an_annotator_labels_accepts_edits_flags_comments_skips_and_undoes_by_keyboard_only(
    browser_page, live_server, annotator, project
):
    from playwright.sync_api import expect

    Project.objects.filter(pk=project.pk).update(
        ask_quality_rating=True
    )  # so a leaked a–d would store a rating
    samples = [Sample.objects.create(project=project, text=text, is_seed=True) for text in TEXTS]
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
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    def answer(sample) -> HumanAnnotation | None:
        return HumanAnnotation.objects.filter(sample=sample, annotator=annotator).first()

    def assignment(sample) -> Assignment:
        return Assignment.objects.get(task__sample=sample, annotator=annotator)

    with screenshot_on_failure(page, "keyboard-path") as step:
        login_as(page, live_server.url, annotator.username, PASSWORD)
        page.goto(f"{live_server.url}/projects/{project.id}/review/")
        wait_for_item(page, TEXTS[0])

        step("label-with-a-digit")
        page.keyboard.press("1")
        wait_for_item(page, TEXTS[1])
        stored = answer(samples[0])
        assert (stored.label, stored.rating, stored.comment, stored.flag) == ("positive", "", "", "")

        step("accept-with-enter")
        page.keyboard.press("Enter")
        wait_for_item(page, TEXTS[2])
        stored = answer(samples[1])
        assert (stored.label, stored.agreed_with_llm, stored.rating) == ("negative", True, "")

        step("edit")
        page.keyboard.press("e")
        expect(page.locator("#edit-panel")).to_have_attribute("open", "")
        expect(page.locator("#edited-text")).to_be_focused()
        page.keyboard.press("Control+A")
        page.keyboard.type(EDITED)  # s, a, d, c, u, e, … are typing here
        expect(page.locator("#edited-text")).to_have_value(EDITED)
        expect(page.locator("#comment-panel[open], #skip-panel[open], #flag-panel[open]")).to_have_count(0)
        page.keyboard.press("Escape")  # leaves the text box and closes the panel; the correction stays
        expect(page.locator("#edit-panel[open]")).to_have_count(0)
        expect(page.locator("#edited-text")).not_to_be_focused()
        assert answer(samples[2]) is None
        page.keyboard.press("2")
        wait_for_item(page, TEXTS[3])
        stored = answer(samples[2])
        assert (stored.label, stored.edited_text, stored.rating) == ("negative", EDITED, "")
        assert SampleTextVersion.objects.get(sample=samples[2]).text == EDITED
        assert Sample.objects.get(pk=samples[2].pk).text == TEXTS[2]  # the original stays

        step("flag")
        page.keyboard.press("f")
        expect(page.locator("#flag-reason")).to_be_focused()
        page.keyboard.press("d")  # picks "Duplicate" in the select, not the quality rating D
        expect(page.locator("#flag-reason")).to_have_value("duplicate")
        page.keyboard.press("Tab")
        expect(page.locator("#flag-note")).to_be_focused()
        page.keyboard.type(FLAG_NOTE)
        page.keyboard.press("Enter")  # leaves the note: does not submit the form with its first label
        expect(page.locator("#flag-note")).not_to_be_focused()
        settled(page)
        expect(page.locator("#item-text")).to_have_text(TEXTS[3])
        assert answer(samples[3]) is None
        expect(page.locator("#workbench input[data-rating]:checked")).to_have_count(0)
        page.keyboard.press("2")
        wait_for_item(page, TEXTS[4])
        stored = answer(samples[3])
        assert (stored.label, stored.flag, stored.flag_note, stored.rating) == (
            "negative",
            "duplicate",
            FLAG_NOTE,
            "",
        )

        step("comment")
        page.keyboard.press("c")
        expect(page.locator("#comment")).to_be_focused()
        page.keyboard.type(COMMENT)
        expect(page.locator("#comment")).to_have_value(COMMENT)
        expect(page.locator("#skip-panel[open], #edit-panel[open], #flag-panel[open]")).to_have_count(0)
        expect(page.locator("#workbench input[data-rating]:checked")).to_have_count(0)
        page.keyboard.press("Escape")
        expect(page.locator("#comment-panel[open]")).to_have_count(0)
        page.keyboard.press("Enter")  # accept the suggestion, with the comment
        wait_for_item(page, TEXTS[5])
        stored = answer(samples[4])
        assert (stored.label, stored.comment, stored.rating, stored.flag) == ("negative", COMMENT, "", "")

        step("skip-with-a-reason")
        page.keyboard.press("s")
        expect(page.locator("#skip-panel")).to_have_attribute("open", "")
        expect(page.locator("#skip-reason")).to_be_focused()  # not the hidden CSRF field before it
        page.keyboard.type(SKIP_REASON)
        expect(page.locator("#skip-reason")).to_have_value(SKIP_REASON)
        expect(page.locator("#comment-panel[open], #edit-panel[open], #flag-panel[open]")).to_have_count(0)
        page.keyboard.press("Enter")
        wait_for_item(page, TEXTS[6])
        assert answer(samples[5]) is None  # a skip, not an answer
        skipped = assignment(samples[5])
        assert (skipped.status, skipped.skip_reason) == (AssignmentStatus.SKIPPED, SKIP_REASON)

        step("skip-without-a-reason")
        page.keyboard.press("s")
        expect(page.locator("#skip-reason")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator(".wb-empty")).to_be_visible()
        settled(page)
        assert answer(samples[6]) is None
        skipped = assignment(samples[6])
        assert (skipped.status, skipped.skip_reason) == (AssignmentStatus.SKIPPED, NO_REASON)

        step("undo")
        page.keyboard.press("u")  # takes back the last answer (the commented one); skips stay skipped
        wait_for_item(page, TEXTS[4])
        assert answer(samples[4]) is None
        assert assignment(samples[4]).status == AssignmentStatus.RESERVED
        assert assignment(samples[5]).status == AssignmentStatus.SKIPPED
        page.keyboard.press("1")
        expect(page.locator(".wb-empty")).to_be_visible()
        assert answer(samples[4]).label == "positive"

        step("totals")
        assert HumanAnnotation.objects.filter(annotator=annotator).count() == 5
        assert not HumanAnnotation.objects.filter(annotator=annotator).exclude(rating="").exists()
        assert dialogs == []
        assert not [
            address for address in requested if address.endswith("/favicon.ico")
        ]  # base.html links an icon


@pytest.mark.browser
def test_esc_closes_the_skip_panel_without_skipping_and_the_next_key_is_a_shortcut_again(
    browser_page, live_server, annotator, project, samples
):
    from playwright.sync_api import expect

    route(project, samples[:2])
    page = browser_page
    with screenshot_on_failure(page, "keyboard-esc") as step:
        login_as(page, live_server.url, annotator.username, PASSWORD)
        page.goto(f"{live_server.url}/projects/{project.id}/review/")
        wait_for_item(page, samples[0].text)

        step("open-skip-and-escape")
        page.keyboard.press("s")
        expect(page.locator("#skip-reason")).to_be_focused()
        page.keyboard.type("cu")
        page.keyboard.press("Escape")
        expect(page.locator("#skip-panel[open]")).to_have_count(0)
        expect(page.locator("#comment-panel[open]")).to_have_count(0)
        assert assignment_status(annotator, samples[0]) == AssignmentStatus.RESERVED

        step("shortcut-after-escape")
        page.keyboard.press("c")
        expect(page.locator("#comment")).to_be_focused()
        page.keyboard.press("Escape")
        page.keyboard.press("?")
        expect(page.locator("#wb-help")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("#wb-help")).to_be_hidden()
        page.keyboard.press("2")
        wait_for_item(page, samples[1].text)
        assert HumanAnnotation.objects.get(sample=samples[0], annotator=annotator).label == "negative"
        assert assignment_status(annotator, samples[0]) == AssignmentStatus.ANSWERED


def assignment_status(annotator, sample) -> str:
    return Assignment.objects.get(task__sample=sample, annotator=annotator).status
