"""Annotators' text corrections (issue 14 item 3): stored pending from the workbench, listed on the lead's
"Text corrections" page with a diff, accepted or rejected there (one per sample when annotators disagree), and
only then the sample's text for curation and the next snapshot; earlier snapshots never change."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import CorrectionStatus, SampleTextVersion, TaskKind
from annotation.review.answers import review_answer_edit
from annotation.review.queue import review_gold_rate_set, review_next, review_tasks_create
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import curation_input_load, snapshot_create, snapshot_diff, snapshot_rows
from synthstudio.models import Membership, Role, Sample
from tests.conftest import make_user

HTMX = {"HTTP_HX_REQUEST": "true"}
ORIGINAL = "The film was a delight from start to finsh."
FIXED = "The film was a delight from start to finish."
HOSTILE = 'The film was <script>alert("x")</script> a delight.'


def client_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(name: str, project, *args) -> str:
    return reverse(f"annotation:{name}", args=[project.pk, *args])


@pytest.fixture
def second_annotator(project):
    user = make_user("bea_annotator")
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    return user


@pytest.fixture
def texts(project):
    """Two samples, each routed to two annotators."""
    samples = [
        Sample.objects.create(project=project, text=ORIGINAL),
        Sample.objects.create(project=project, text="Two hours I will never get back."),
    ]
    review_gold_rate_set(project=project, gold_rate=0.0)
    review_tasks_create(
        project=project,
        samples_with_reasons=[(sample, "test", float(-index)) for index, sample in enumerate(samples)],
        kind=TaskKind.ROUTED,
        required_answers=2,
    )
    return samples


def answer_all(project, user, edits: dict[int, str]) -> None:
    """The annotator answers every item the queue serves them on the workbench, correcting the texts in
    `edits` (sample id -> text) and sending the others back unchanged, as the form does."""
    client = client_as(user)
    while (assignment := review_next(project=project, annotator=user)) is not None:
        sample = assignment.task.sample
        response = client.post(
            page("review_answer", project, assignment.pk),
            {
                "label": "positive",
                "edited_text": edits.get(sample.pk, sample.text),
                "submission_id": f"form-{assignment.pk}",
            },
            **HTMX,
        )
        assert response.status_code == 200


def current_texts(project) -> dict[int, str]:
    return {row[0]: row[1] for row in curation_input_load(project=project).rows}


def decide(client, project, correction, decision: str):
    return client.post(page("text_correction_decide", project, correction.pk), {"decision": decision})


def test_a_correction_is_pending_listed_with_its_diff_and_unused_until_a_lead_accepts_it(
    project, lead, annotator, texts
):
    answer_all(project, annotator, {texts[0].pk: FIXED})
    correction = SampleTextVersion.objects.get()
    assert (correction.status, correction.text, correction.author) == (
        CorrectionStatus.PENDING,
        FIXED,
        annotator,
    )
    assert current_texts(project)[texts[0].pk] == ORIGINAL  # pending corrections are not used

    lead_client = client_as(lead)
    html = lead_client.get(page("text_corrections", project)).content.decode()
    assert f'id="correction-{correction.pk}"' in html
    assert "<del>finsh</del><ins>finish</ins>" in html  # the diff, word by word
    assert ORIGINAL in html and annotator.username in html

    response = decide(lead_client, project, correction, "accept")
    assert response.status_code == 302
    correction.refresh_from_db()
    assert (correction.status, correction.decided_by) == (CorrectionStatus.ACCEPTED, lead)
    assert current_texts(project) == {texts[0].pk: FIXED, texts[1].pk: texts[1].text}
    assert Sample.objects.get(pk=texts[0].pk).text == ORIGINAL  # the original stays on the sample


def test_the_page_escapes_the_corrected_text(project, lead, annotator, texts):
    answer_all(project, annotator, {texts[0].pk: HOSTILE})
    html = client_as(lead).get(page("text_corrections", project)).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html


def test_annotators_cannot_decide_corrections(project, annotator, texts):
    answer_all(project, annotator, {texts[0].pk: FIXED})
    correction = SampleTextVersion.objects.get()
    assert decide(client_as(annotator), project, correction, "accept").status_code == 403
    assert client_as(annotator).get(page("text_corrections", project)).status_code == 403
    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.PENDING


def test_when_two_annotators_correct_a_sample_differently_the_lead_picks_one(
    project, lead, annotator, second_annotator, texts
):
    other_fix = "The film was a delight from beginning to end."
    answer_all(project, annotator, {texts[0].pk: FIXED, texts[1].pk: "Two hours I'll never get back."})
    answer_all(project, second_annotator, {texts[0].pk: other_fix})
    lead_client = client_as(lead)
    html = lead_client.get(page("text_corrections", project)).content.decode()
    assert html.count("1 other correction: pick one") == 2

    # bulk accept takes the uncontested correction and leaves the contested sample to the lead
    response = lead_client.post(page("text_corrections_accept_all", project), follow=True)
    assert "Accepted 1 correction." in response.content.decode()
    assert "2 still wait for you" in response.content.decode()
    statuses = dict(SampleTextVersion.objects.values_list("text", "status"))
    assert statuses == {
        FIXED: CorrectionStatus.PENDING,
        other_fix: CorrectionStatus.PENDING,
        "Two hours I'll never get back.": CorrectionStatus.ACCEPTED,
    }

    decide(lead_client, project, SampleTextVersion.objects.get(text=other_fix), "accept")
    statuses = dict(SampleTextVersion.objects.filter(sample=texts[0]).values_list("text", "status"))
    assert statuses == {FIXED: CorrectionStatus.REJECTED, other_fix: CorrectionStatus.ACCEPTED}
    assert current_texts(project)[texts[0].pk] == other_fix

    # changing one's mind: accepting the other one swaps them (never two accepted texts for a sample)
    decide(lead_client, project, SampleTextVersion.objects.get(text=FIXED), "accept")
    statuses = dict(SampleTextVersion.objects.filter(sample=texts[0]).values_list("text", "status"))
    assert statuses == {FIXED: CorrectionStatus.ACCEPTED, other_fix: CorrectionStatus.REJECTED}
    assert current_texts(project)[texts[0].pk] == FIXED


def test_a_second_identical_correction_adds_nothing_to_decide(project, annotator, second_annotator, texts):
    answer_all(project, annotator, {texts[0].pk: FIXED})
    answer_all(project, second_annotator, {texts[0].pk: FIXED})
    assert SampleTextVersion.objects.count() == 1


def test_rejected_corrections_are_not_used_and_rejecting_the_accepted_one_restores_the_original(
    project, lead, annotator, texts
):
    answer_all(project, annotator, {texts[0].pk: FIXED})
    correction = SampleTextVersion.objects.get()
    lead_client = client_as(lead)
    decide(lead_client, project, correction, "accept")
    assert current_texts(project)[texts[0].pk] == FIXED
    decide(lead_client, project, correction, "reject")
    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.REJECTED
    assert current_texts(project)[texts[0].pk] == ORIGINAL
    html = lead_client.get(page("text_corrections", project) + "?status=rejected").content.decode()
    assert f'id="correction-{correction.pk}"' in html


def test_an_unknown_decision_changes_nothing(project, lead, annotator, texts):
    answer_all(project, annotator, {texts[0].pk: FIXED})
    correction = SampleTextVersion.objects.get()
    response = client_as(lead).post(
        page("text_correction_decide", project, correction.pk), {"decision": "maybe"}, follow=True
    )
    assert "Choose accept or reject." in response.content.decode()
    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.PENDING


def test_an_annotators_later_edit_replaces_their_pending_correction(project, lead, annotator, texts):
    answer_all(project, annotator, {texts[0].pk: "The film was a delight from start to finis."})
    first = SampleTextVersion.objects.get()
    assignment = first.annotation.assignment
    review_answer_edit(assignment=assignment, label="positive", edited_text=FIXED)
    first.refresh_from_db()
    assert first.status == CorrectionStatus.SUPERSEDED
    assert SampleTextVersion.objects.get(status=CorrectionStatus.PENDING).text == FIXED
    response = decide(client_as(lead), project, first, "accept")
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == CorrectionStatus.SUPERSEDED
    assert current_texts(project)[texts[0].pk] == ORIGINAL


def test_putting_the_original_text_back_withdraws_the_pending_correction(project, annotator, texts):
    answer_all(project, annotator, {texts[0].pk: FIXED})
    correction = SampleTextVersion.objects.get()
    assignment = correction.annotation.assignment
    review_answer_edit(assignment=assignment, label="negative")  # no text box sent: the correction stays
    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.PENDING
    review_answer_edit(assignment=assignment, label="negative", edited_text=ORIGINAL)
    correction.refresh_from_db()
    assert correction.status == CorrectionStatus.SUPERSEDED
    assert not SampleTextVersion.objects.filter(status=CorrectionStatus.PENDING).exists()


def test_a_snapshot_keeps_its_text_and_the_next_one_has_the_accepted_correction(
    project, lead, annotator, texts
):
    answer_all(project, annotator, {texts[0].pk: FIXED})
    before = snapshot_create(project=project, user=lead, settings=FilterSettings())
    row = next(row for row in snapshot_rows(before) if row["sample_ref"] == texts[0].pk)
    assert (row["text"], row["original_text"]) == (ORIGINAL, None)  # pending: not used

    decide(client_as(lead), project, SampleTextVersion.objects.get(), "accept")
    after = snapshot_create(project=project, user=lead, settings=FilterSettings())
    rows = {row["sample_ref"]: row for row in snapshot_rows(after)}
    assert (rows[texts[0].pk]["text"], rows[texts[0].pk]["original_text"]) == (FIXED, ORIGINAL)
    assert rows[texts[1].pk]["original_text"] is None

    # the earlier snapshot is an immutable version
    row = next(row for row in snapshot_rows(before) if row["sample_ref"] == texts[0].pk)
    assert (row["text"], row["original_text"]) == (ORIGINAL, None)

    diff = snapshot_diff(old=before, new=after)
    assert diff.text_changed == [
        {"sample_id": texts[0].pk, "old_text": ORIGINAL, "new_text": FIXED, "label": "positive"}
    ]
    assert diff.relabelled == [] and diff.added == [] and diff.removed == []


def test_the_snapshot_comparison_page_lists_the_text_change(project, lead, annotator, texts):
    answer_all(project, annotator, {texts[0].pk: FIXED})
    before = snapshot_create(project=project, user=lead, settings=FilterSettings())
    decide(client_as(lead), project, SampleTextVersion.objects.get(), "accept")
    after = snapshot_create(project=project, user=lead, settings=FilterSettings())
    response = client_as(lead).get(
        reverse("evaluation:snapshot_compare", args=[project.id, after.version]), {"against": before.version}
    )
    assert response.context["counts"]["text_changed"] == 1
    assert [row["new_text"] for row in response.context["text_changed"]] == [FIXED]
    assert FIXED in response.content.decode()
