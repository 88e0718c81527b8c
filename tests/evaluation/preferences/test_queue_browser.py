"""Browser: once the label queue is empty the annotator judges pairs in the same workbench with keys 1/2/3;
hostile response text renders as text. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from evaluation.models import PairChoice, PairwiseItem, PairwiseJudgment
from evaluation.preferences.services import a_shown_first_for
from tests.annotation.review.test_browser import HOSTILE, record_dialogs, route, wait_for_item
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD


def settled(page) -> None:
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


@pytest.mark.browser
def test_it_lets_an_annotator_judge_pairs_in_the_workbench_with_the_keyboard(
    browser_page, live_server, annotator, project, samples
):
    from playwright.sync_api import expect

    route(project, samples[:1])
    first_pair = PairwiseItem.objects.create(project=project, prompt="Generated for topic = plot.", response_a="Warm words about the plot.",
                                             response_b=HOSTILE, source_a="run #1", source_b="run #2")  # fmt: skip
    second_pair = PairwiseItem.objects.create(project=project, prompt="Generated for topic = acting.", response_a="Warm acting.",
                                              response_b="Cold acting.", source_a="run #1", source_b="run #2")  # fmt: skip
    page = browser_page
    dialogs = record_dialogs(page)
    login_as(page, live_server.url, annotator.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/")
    expect(page.locator("#workbench")).to_contain_text("2 pairs waiting")
    wait_for_item(page, samples[0].text)

    page.keyboard.press("1")  # the last label: the empty queue then shows the first pair
    expect(page.locator(".wb-empty")).to_be_visible()
    expect(page.locator("#pair .pair-prompt")).to_have_text(first_pair.prompt)
    expect(page.locator("#pair")).to_contain_text(HOSTILE)  # shown as text
    settled(page)
    screenshot(page, "review-workbench-pair")

    page.keyboard.press("1")  # response 1 is better
    expect(page.locator("#pair .pair-prompt")).to_have_text(second_pair.prompt)
    settled(page)
    page.keyboard.press("3")  # tie
    expect(page.locator("#pair")).to_contain_text("No pairs left for you to compare")
    screenshot(page, "review-workbench-pairs-done")

    a_first = a_shown_first_for(item_id=first_pair.id, user_id=annotator.id)
    choices = dict(PairwiseJudgment.objects.filter(rater__user=annotator).values_list("item_id", "choice"))
    assert choices == {
        first_pair.id: PairChoice.A if a_first else PairChoice.B,
        second_pair.id: PairChoice.TIE,
    }
    assert dialogs == []
