"""Snapshot builds in a worker job: hidden until every row is written, re-runnable after a crash, the version
number given back when a build fails."""

import pytest
from django.urls import reverse

from annotation.review.final_labels import final_label_refresh
from evaluation.curation import services as curation_services
from evaluation.curation import snapshots
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create, snapshot_reserve
from evaluation.models import Snapshot, SnapshotItem, SnapshotJob
from evaluation.tasks import snapshot_job_task
from synthstudio.models import JobStatus, LabelMethod, LLMAnnotation


@pytest.fixture
def labelled(samples):
    for sample, name in zip(samples, ["positive", "negative", "positive", "negative"], strict=True):
        LLMAnnotation.objects.create(
            sample=sample, label=name, distribution={name: 0.9}, confidence=0.9, method=LabelMethod.IMPORTED
        )
        final_label_refresh(sample=sample)
    return samples


def queued_job(project, lead) -> SnapshotJob:
    return SnapshotJob.objects.create(
        project=project, created_by=lead, filter_settings=FilterSettings().as_dict(), note="nightly"
    )


def test_a_job_builds_a_ready_snapshot_with_progress(project, lead, labelled):
    job = queued_job(project, lead)
    snapshot_job_task(job.pk)
    job.refresh_from_db()
    assert (job.status, job.done, job.total) == (JobStatus.SUCCEEDED, 4, 4)
    assert (job.snapshot.version, job.snapshot.item_count, job.snapshot.is_ready, job.snapshot.note) == (
        1,
        4,
        True,
        "nightly",
    )
    assert job.message == "Snapshot v1 saved with 4 items."


def test_a_build_rerun_after_a_crash_empties_the_half_built_row_and_finishes_it(project, lead, labelled):
    job = queued_job(project, lead)
    half_built = snapshot_reserve(project=project, user=lead)  # what a worker killed mid-build leaves behind
    SnapshotItem.objects.create(
        snapshot=half_built,
        sample_ref=0,
        text="left by the dead worker",
        label="x",
        label_source="llm",
        weight=1.0,
    )
    SnapshotJob.objects.filter(pk=job.pk).update(snapshot=half_built, status=JobStatus.RUNNING)
    assert not Snapshot.objects.ready().exists()
    snapshot_job_task(job.pk)
    half_built.refresh_from_db()
    assert half_built.is_ready and Snapshot.objects.count() == 1
    assert sorted(half_built.items.values_list("sample_ref", flat=True)) == sorted(s.pk for s in labelled)


def test_a_finished_job_run_again_makes_no_second_snapshot(project, lead, labelled):
    job = queued_job(project, lead)
    snapshot_job_task(job.pk)
    snapshot_job_task(job.pk)
    assert Snapshot.objects.count() == 1
    assert SnapshotItem.objects.count() == 4


def test_a_failed_build_hides_nothing_and_gives_its_version_back(project, lead, labelled, monkeypatch):
    def broken(**_):
        raise RuntimeError("embedding model missing")

    monkeypatch.setattr(snapshots, "curation_run", broken)
    job = queued_job(project, lead)
    snapshot_job_task(job.pk)
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "RuntimeError: embedding model missing")
    assert not Snapshot.objects.exists()
    monkeypatch.undo()
    assert snapshot_create(project=project, user=lead, settings=FilterSettings()).version == 1


def test_a_snapshot_being_built_is_not_listed_and_its_page_is_404(lead_client, project, lead, labelled):
    ready = snapshot_create(project=project, user=lead, settings=FilterSettings())
    hidden = snapshot_reserve(project=project, user=lead)
    page = lead_client.get(reverse("evaluation:curation", args=[project.id]))
    assert list(page.context["snapshots"]) == [ready]
    assert (
        lead_client.get(reverse("evaluation:snapshot_detail", args=[project.id, hidden.version])).status_code
        == 404
    )


def test_the_start_service_enqueues_once_the_job_row_is_committed(
    project, lead, labelled, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = curation_services.snapshot_job_start(
            project=project, user=lead, settings=FilterSettings(), note="n"
        )
    assert len(callbacks) == 1
    assert SnapshotJob.objects.get(pk=job.pk).status == JobStatus.QUEUED


@pytest.mark.worker
def test_a_real_worker_builds_the_snapshot(celery_worker_process, project, lead, labelled):
    from tests.worker import wait_for_job

    job = curation_services.snapshot_job_start(
        project=project, user=lead, settings=FilterSettings(), split_fractions={"train": 0.5, "test": 0.5}
    )
    job = wait_for_job(job, celery_worker_process)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.snapshot.is_ready
    assert sorted(job.snapshot.items.values_list("split", flat=True)) == ["test", "test", "train", "train"]


def test_the_progress_fragment_of_a_finished_build_reloads_the_page_to_show_the_link(
    lead_client, project, lead, labelled
):
    job = queued_job(project, lead)
    snapshot_job_task(job.pk)
    response = lead_client.get(
        reverse("evaluation:snapshot_job_progress", args=[project.id, job.pk]), HTTP_HX_REQUEST="true"
    )
    assert response["HX-Refresh"] == "true"
    page = lead_client.get(reverse("evaluation:snapshot_job", args=[project.id, job.pk])).content.decode()
    assert 'id="open-snapshot"' in page and "http-equiv" not in page  # finished: no more reloads
