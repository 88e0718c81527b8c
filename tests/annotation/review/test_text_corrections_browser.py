"""Browser: the lead reaches "Text corrections" from the nav, reads each correction as a diff (hostile text stays
text), picks one of two rival corrections, accepts the rest in bulk, and the next snapshot has the accepted
texts. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest

from annotation.models import CorrectionStatus, SampleTextVersion, TaskKind
from annotation.review.answers import review_answer_submit
from annotation.review.queue import review_gold_rate_set, review_next, review_tasks_create
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create, snapshot_rows
from synthstudio.models import Membership, Role, Sample
from tests.browser import login_as, screenshot
from tests.conftest import PASSWORD, make_user

TYPO = "A delight from start to finsh."
HOSTILE = "<img src=x onerror=alert(1)>Two hours I will never get back."


@pytest.mark.browser
def test_the_lead_accepts_corrections_on_the_page_and_the_next_snapshot_uses_them(
    browser_page, live_server, lead, annotator, project
):
    from playwright.sync_api import expect

    second = make_user("bea_annotator")
    Membership.objects.create(project=project, user=second, role=Role.ANNOTATOR)
    typo, hostile = (
        Sample.objects.create(project=project, text=TYPO),
        Sample.objects.create(project=project, text="Two hours I will never get back."),
    )
    review_gold_rate_set(project=project, gold_rate=0.0)
    review_tasks_create(
        project=project,
        samples_with_reasons=[(typo, "test", 2.0), (hostile, "test", 1.0)],
        kind=TaskKind.ROUTED,
        required_answers=2,
    )
    edits = {
        annotator: {typo.pk: "A delight from start to finish.", hostile.pk: HOSTILE},
        second: {typo.pk: "A delight from beginning to end."},
    }
    for user, texts in edits.items():
        while (assignment := review_next(project=project, annotator=user)) is not None:
            sample = assignment.task.sample
            review_answer_submit(
                assignment=assignment, label="positive", edited_text=texts.get(sample.pk, sample.text)
            )

    page = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login_as(page, live_server.url, lead.username, PASSWORD)
    page.goto(f"{live_server.url}/projects/{project.id}/review/lead/")
    page.get_by_role("link", name="Text corrections").click()
    expect(page.locator("#corrections-table tbody tr")).to_have_count(3)
    rows = page.locator("#corrections-table tbody tr")
    chosen = SampleTextVersion.objects.get(text="A delight from start to finish.")
    row = page.locator(f"#correction-{chosen.pk}")
    expect(row.locator("del")).to_have_text("finsh")
    expect(row.locator("ins")).to_have_text("finish")
    expect(row).to_contain_text("1 other correction: pick one")
    hostile_row = page.locator(f"#correction-{SampleTextVersion.objects.get(text=HOSTILE).pk}")
    expect(hostile_row.locator(".correction-diff")).to_contain_text("<img src=x onerror=alert(1)>")
    expect(hostile_row.locator("img")).to_have_count(0)
    screenshot(page, "text-corrections")

    row.get_by_role("button", name="Accept").click()
    expect(page.locator(".messages")).to_contain_text(f"the correction of sample {typo.pk}")
    expect(rows).to_have_count(1)  # the rival correction was rejected with the pick
    page.get_by_role("button", name="Accept every pending correction").click()
    expect(page.locator(".messages")).to_contain_text("Accepted 1 correction.")
    expect(page.locator(".empty")).to_have_text("No pending corrections.")
    page.get_by_role("link", name="Rejected (1)").click()
    expect(page.locator("#corrections-table ins")).to_have_text(["beginning", "end"])
    expect(page.locator("#corrections-table")).not_to_contain_text("pick one")  # decided: nothing to pick
    assert dialogs == []

    assert dict(SampleTextVersion.objects.values_list("text", "status")) == {
        "A delight from start to finish.": CorrectionStatus.ACCEPTED,
        "A delight from beginning to end.": CorrectionStatus.REJECTED,
        HOSTILE: CorrectionStatus.ACCEPTED,
    }
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    assert {row["sample_ref"]: (row["text"], row["original_text"]) for row in snapshot_rows(snapshot)} == {
        typo.pk: ("A delight from start to finish.", TYPO),
        hostile.pk: (HOSTILE, "Two hours I will never get back."),
    }
