"""Bulk actions of the samples page (issue 14 item 10): send to review, mark gold, exclude from / include in
snapshots, on the ticked samples or all matching the filter; more than INLINE_LIMIT run as a background job."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import GoldItem, ReviewTask, TaskKind
from annotation.samples import actions
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create, snapshot_rows
from synthstudio.models import FinalSource, JobStatus, Origin, Sample, SampleAction, SampleActionJob
from synthstudio.services import project_create


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def labelled(project):
    """Three LLM-labelled imported samples, one unlabelled generated one."""
    rows = [
        Sample.objects.create(
            project=project, text=text, final_label=label, final_source=source, origin=origin
        )
        for text, label, source, origin in [
            ("A delight from start to finish.", "positive", FinalSource.LLM, Origin.IMPORTED),
            ("Two hours I will never get back.", "negative", FinalSource.LLM, Origin.IMPORTED),
            ("The acting was superb.", "positive", FinalSource.HUMAN, Origin.IMPORTED),
            ("Generated and never labelled.", "", FinalSource.NONE, Origin.GENERATED),
        ]
    ]
    return rows


def act(client, project, action, *, ticked=(), scope="selected", **filters):
    data = {"action": action, "scope": scope, "sample": [str(s.pk) for s in ticked], **filters}
    return client.post(reverse("annotation:sample_action", args=[project.id]), data, follow=True)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_send_to_review_routes_the_ticked_samples_once(lead_client, project, labelled):
    response = act(lead_client, project, SampleAction.SEND_TO_REVIEW, ticked=labelled[:2])
    again = act(lead_client, project, SampleAction.SEND_TO_REVIEW, ticked=labelled[:3])

    tasks = ReviewTask.objects.filter(project=project, kind=TaskKind.MANUAL)
    assert sorted(tasks.values_list("sample_id", flat=True)) == sorted(s.pk for s in labelled[:3])
    assert set(tasks.values_list("reason", flat=True)) == {"sent by a lead"}
    assert messages_of(response) == ["Sent 2 samples to review."]
    assert messages_of(again) == ["Sent 1 sample to review. Skipped 2 samples already waiting in the queue."]


def test_mark_gold_uses_the_final_label_and_skips_unlabelled_samples(lead_client, project, labelled):
    response = act(lead_client, project, SampleAction.MARK_GOLD, ticked=labelled)

    gold = dict(GoldItem.objects.filter(project=project).values_list("sample_id", "label"))
    assert gold == {labelled[0].pk: "positive", labelled[1].pk: "negative", labelled[2].pk: "positive"}
    assert set(
        ReviewTask.objects.filter(kind=TaskKind.GOLD, is_open=True).values_list("sample_id", flat=True)
    ) == set(gold)
    assert messages_of(response)[0].startswith(
        "Marked 3 samples as gold. Skipped 1 sample without a final label"
    )


def test_marking_gold_again_follows_a_changed_final_label_without_a_second_gold_check(
    lead_client, project, labelled
):
    act(lead_client, project, SampleAction.MARK_GOLD, ticked=labelled[:2])
    Sample.objects.filter(pk=labelled[0].pk).update(final_label="negative")

    response = act(lead_client, project, SampleAction.MARK_GOLD, ticked=labelled[:2])

    assert GoldItem.objects.get(sample=labelled[0]).label == "negative"
    assert ReviewTask.objects.filter(kind=TaskKind.GOLD).count() == 2
    assert messages_of(response)[0].startswith("Marked 1 sample as gold. Skipped 1 sample")


def test_excluded_samples_stay_out_of_snapshots_until_included_again(lead_client, project, labelled, lead):
    act(lead_client, project, SampleAction.EXCLUDE, ticked=labelled[:1])

    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    refs = {row["sample_ref"] for row in snapshot_rows(snapshot)}
    assert refs == {labelled[1].pk, labelled[2].pk}
    assert snapshot.removed_counts["excluded"] == 1

    act(lead_client, project, SampleAction.INCLUDE, ticked=labelled[:1])
    again = snapshot_create(project=project, user=lead, settings=FilterSettings())
    assert {row["sample_ref"] for row in snapshot_rows(again)} == {s.pk for s in labelled[:3]}


def test_all_matching_the_filter_acts_on_the_filter_not_the_ticks(lead_client, project, labelled):
    response = act(
        lead_client,
        project,
        SampleAction.EXCLUDE,
        ticked=labelled[3:],
        scope="all",
        label="positive",
        q="THE",
    )

    excluded = set(Sample.objects.filter(excluded_from_snapshots=True).values_list("pk", flat=True))
    assert excluded == {labelled[2].pk}  # "The acting was superb." is the only positive one containing "the"
    assert messages_of(response) == ["Excluded 1 sample from snapshots."]
    assert (
        response.redirect_chain[-1][0] == reverse("sample_list", args=[project.id]) + "?q=THE&label=positive"
    )


def test_nothing_ticked_or_no_action_changes_nothing_and_says_so(lead_client, project, labelled):
    nothing = act(lead_client, project, SampleAction.EXCLUDE)
    no_action = act(lead_client, project, "delete_everything", ticked=labelled)

    assert "Tick some samples first" in messages_of(nothing)[0]
    assert messages_of(no_action) == ["Choose one of the actions."]
    assert not Sample.objects.filter(excluded_from_snapshots=True).exists()


def test_another_projects_sample_ids_are_ignored(lead_client, project, lead, labelled):
    elsewhere = Sample.objects.create(project=project_create(name="Other", user=lead), text="Not yours.")

    act(lead_client, project, SampleAction.EXCLUDE, ticked=[elsewhere, labelled[0]])

    assert list(Sample.objects.filter(excluded_from_snapshots=True)) == [labelled[0]]


def test_annotators_cannot_run_bulk_actions(annotator_client, project, labelled):
    response = annotator_client.post(
        reverse("annotation:sample_action", args=[project.id]),
        {"action": SampleAction.EXCLUDE, "sample": [labelled[0].pk]},
    )

    assert response.status_code == 403
    assert not Sample.objects.filter(excluded_from_snapshots=True).exists()


def test_more_than_the_inline_limit_runs_as_a_background_job(
    lead_client, project, lead, django_capture_on_commit_callbacks
):
    Sample.objects.bulk_create(
        [
            Sample(project=project, text=f"review {i}", text_hash=str(i), final_label="positive")
            for i in range(actions.INLINE_LIMIT + 5)
        ]
    )
    with django_capture_on_commit_callbacks(execute=True):  # the eager task runs once the request commits
        response = act(lead_client, project, SampleAction.MARK_GOLD, scope="all", q="review")

    job = SampleActionJob.objects.get(project=project)
    assert response.redirect_chain[-1][0] == reverse(
        "annotation:sample_action_job", args=[project.id, job.pk]
    )
    assert "runs as a background job over 1005 samples" in messages_of(response)[0]
    assert (job.status, job.total, job.done, job.changed, job.skipped) == (
        JobStatus.SUCCEEDED,
        1005,
        1005,
        1005,
        0,
    )
    assert job.message == "Marked 1005 samples as gold."
    assert GoldItem.objects.filter(project=project).count() == 1005
    page = lead_client.get(reverse("annotation:sample_action_job", args=[project.id, job.pk]))
    assert "Marked 1005 samples as gold." in page.content.decode()


def test_up_to_the_inline_limit_runs_in_the_request(lead_client, project):
    Sample.objects.bulk_create(
        [Sample(project=project, text=f"review {i}", text_hash=str(i)) for i in range(actions.INLINE_LIMIT)]
    )

    response = act(lead_client, project, SampleAction.EXCLUDE, scope="all")

    assert not SampleActionJob.objects.exists()
    assert messages_of(response) == [f"Excluded {actions.INLINE_LIMIT} samples from snapshots."]
