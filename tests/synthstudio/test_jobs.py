"""Background jobs without a worker process: pinned task names and time limits, the lease a task claims, the one
stall detector for every kind of job, and the Retry button (synthstudio.jobs, synthstudio.views.job_retry)."""

from __future__ import annotations

import ast
import inspect
import os
import socket
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from evaluation.curation import snapshots
from evaluation.curation.filters import FilterSettings
from evaluation.models import SnapshotJob
from evaluation.tasks import snapshot_job_task
from synthstudio import celery_app, jobs, services, task_limits
from synthstudio.importing import ColumnMapping
from synthstudio.models import BackgroundJob, ImportJob, JobStatus, Sample
from synthstudio.tasks import import_file

PINNED_TASK_NAMES = {
    "annotation.tasks.labelling_run_task",
    "annotation.tasks.routing_next_batch_task",
    "annotation.tasks.sample_action_task",
    "annotation.tasks.signals_run_task",
    "evaluation.curation_tasks.export_job_task",
    "evaluation.curation_tasks.labelstudio_import_task",
    "evaluation.curation_tasks.refinement_run_task",
    "evaluation.curation_tasks.snapshot_job_task",
    "evaluation.tasks.benchmark_run_task",
    "evaluation.tasks.judge_run_task",
    "evaluation.tasks.metrics_refresh_task",
    "generation.run",
    "generation.run_shard",
    "generation.rounds_advance",
    "synthstudio.tasks.import_file",
}
CSV = b"text,gold\nA joy.,positive\nA chore.,negative\nA treat.,positive\n"


def our_tasks() -> dict:
    celery_app.loader.import_default_modules()
    return {name: task for name, task in celery_app.tasks.items() if not name.startswith("celery.")}


def decorator_name(task) -> str | None:
    """The literal name= given in the task's decorator (None when the name is generated from the module)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(task.run)))
    for decorator in tree.body[0].decorator_list:
        if isinstance(decorator, ast.Call):
            for keyword in decorator.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return keyword.value.value
    return None


def test_every_task_has_the_name_queued_messages_use():
    assert set(our_tasks()) == PINNED_TASK_NAMES


def test_every_task_pins_its_name_in_its_decorator_so_moving_the_module_keeps_it():
    assert {name: decorator_name(task) for name, task in our_tasks().items()} == {
        name: name for name in PINNED_TASK_NAMES
    }


def test_every_task_has_a_soft_and_a_later_hard_time_limit_by_kind():
    limits = {name: (task.soft_time_limit, task.time_limit) for name, task in our_tasks().items()}
    assert all(soft and hard and soft < hard for soft, hard in limits.values())
    assert set(limits.values()) <= {(kind.soft, kind.hard) for kind in task_limits.ALL}
    assert limits["evaluation.tasks.metrics_refresh_task"][0] < limits["synthstudio.tasks.import_file"][0]
    assert (
        limits["evaluation.curation_tasks.export_job_task"][0]
        < limits["annotation.tasks.labelling_run_task"][0]
    )


def test_the_redis_visibility_timeout_outlasts_the_longest_hard_limit():
    code = "from django.conf import settings; print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'])"
    environment = {
        **os.environ,
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
        "DJANGO_SETTINGS_MODULE": "synthstudio.settings",
    }
    output = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"], env=environment, capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    assert int(output.strip().splitlines()[-1]) > task_limits.LONGEST_HARD_LIMIT


def test_every_kind_of_job_is_registered_with_the_task_that_runs_it():
    concrete = {model._meta.label_lower for model in apps.get_models() if issubclass(model, BackgroundJob)}
    kinds = jobs.job_kinds()
    assert set(kinds) == concrete
    assert all(kind.task.name in PINNED_TASK_NAMES for kind in kinds.values())


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.JOB_STALL_SECONDS = 120
    settings.JOB_MAX_ATTEMPTS = 3


def import_job(project, lead) -> ImportJob:
    """An import ready to run (mapped), queued but not sent."""
    job = services.import_create(project=project, user=lead, upload=SimpleUploadedFile("films.csv", CSV))
    ImportJob.objects.filter(pk=job.pk).update(
        mapping=ColumnMapping(text_columns=["text"], gold_label_column="gold").to_dict(),
        codebook=project.codebook,
    )
    job.refresh_from_db()
    return job


def as_running(job: BackgroundJob, *, holder: str, silent_seconds: float, attempts: int = 1) -> BackgroundJob:
    """What a worker that claimed the job leaves in its row, `silent_seconds` after its last heartbeat."""
    beat = timezone.now() - timedelta(seconds=silent_seconds)
    type(job).objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, lease_holder=holder, heartbeat_at=beat, started_at=beat, attempts=attempts
    )
    job.refresh_from_db()
    return job


ELSEWHERE = "4242@another-host"  # a worker on another machine: only its heartbeat tells whether it lives


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ------------------------------------------------------------------------------------------ recovery


def test_a_stalled_job_is_queued_again_and_then_finishes(project, lead, django_capture_on_commit_callbacks):
    job = as_running(import_job(project, lead), holder=ELSEWHERE, silent_seconds=300)

    with django_capture_on_commit_callbacks(execute=False) as sent:
        recovered = jobs.recover_stalled_jobs()
    job.refresh_from_db()
    assert recovered == [jobs.Recovery("synthstudio.importjob", job.pk, requeued=True)]
    assert (job.status, job.lease_holder, len(sent)) == (JobStatus.QUEUED, "", 1)
    assert (
        job.message
        == "The worker running this job stopped (no heartbeat for 2 minutes); queued again (start 2 of 3)."
    )

    sent[0]()  # the message reaches a worker (eager here)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.imported, Sample.objects.filter(project=project).count()) == (
        JobStatus.SUCCEEDED, 2, 3, 3,
    )  # fmt: skip


def test_a_job_with_a_fresh_heartbeat_is_left_alone(project, lead, django_capture_on_commit_callbacks):
    job = as_running(import_job(project, lead), holder=ELSEWHERE, silent_seconds=30)

    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert jobs.recover_stalled_jobs() == []
    job.refresh_from_db()
    assert (job.status, job.lease_holder, job.attempts, sent) == (JobStatus.RUNNING, ELSEWHERE, 1, [])


def test_a_job_that_stalled_on_every_allowed_start_fails_with_the_reason(
    project, lead, django_capture_on_commit_callbacks
):
    job = as_running(import_job(project, lead), holder=ELSEWHERE, silent_seconds=300, attempts=3)

    with django_capture_on_commit_callbacks(execute=False) as sent:
        recovered = jobs.recover_stalled_jobs()
    job.refresh_from_db()
    assert recovered == [jobs.Recovery("synthstudio.importjob", job.pk, requeued=False)]
    assert (job.status, sent) == (JobStatus.FAILED, [])
    assert job.error == (
        "The worker running this job stopped 3 times (no heartbeat for 2 minutes), so it was not started again. "
        "Retry starts it once more."
    )
    assert job.finished_at is not None


def test_a_silent_job_whose_process_is_alive_on_this_host_is_left_alone_until_its_hard_limit(project, lead):
    """On SQLite an import's one transaction locks out every heartbeat: a live holder keeps its lease."""
    alive_here = jobs.lease_holder_name()
    job = as_running(import_job(project, lead), holder=alive_here, silent_seconds=600)
    assert jobs.recover_stalled_jobs() == []

    as_running(job, holder=alive_here, silent_seconds=task_limits.IMPORT.hard + 121)
    assert [r.job_id for r in jobs.recover_stalled_jobs()] == [job.pk]


def test_a_silent_job_whose_process_died_on_this_host_is_recovered(project, lead):
    job = as_running(
        import_job(project, lead), holder=f"{dead_pid()}@{socket.gethostname()}", silent_seconds=121
    )

    assert [r.job_id for r in jobs.recover_stalled_jobs()] == [job.pk]


def test_the_worker_status_poll_of_every_page_looks_for_stalled_jobs(lead_client, project, lead, monkeypatch):
    job = as_running(import_job(project, lead), holder=ELSEWHERE, silent_seconds=300, attempts=3)
    monkeypatch.setattr(jobs, "_last_recovery", 0.0)

    assert lead_client.get(reverse("worker_status")).status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


# ------------------------------------------------------------------------------------------ the task's lease


def test_a_redelivered_message_for_a_job_a_live_worker_holds_does_nothing(project, lead):
    job = as_running(import_job(project, lead), holder=ELSEWHERE, silent_seconds=5)

    import_file.delay(job.pk)
    job.refresh_from_db()
    assert (job.status, job.lease_holder, job.attempts) == (JobStatus.RUNNING, ELSEWHERE, 1)
    assert not Sample.objects.filter(project=project).exists()


def test_a_redelivered_message_for_a_job_whose_worker_died_resumes_it(project, lead):
    job = as_running(import_job(project, lead), holder=ELSEWHERE, silent_seconds=300)

    import_file.delay(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.imported) == (JobStatus.SUCCEEDED, 2, 3)


def test_a_message_for_a_finished_job_does_nothing(project, lead):
    job = import_job(project, lead)
    import_file.delay(job.pk)
    import_file.delay(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts, Sample.objects.filter(project=project).count()) == (
        JobStatus.SUCCEEDED,
        1,
        3,
    )


def test_the_soft_time_limit_fails_the_job_saying_it_took_too_long(project, lead, monkeypatch):
    def too_slow(*, job):
        job.mark_running()
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(services, "import_run", too_slow)
    job = import_job(project, lead)
    import_file.delay(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("Stopped: the job took longer than 2 hours, its time limit.")


def test_a_service_that_records_the_soft_time_limit_as_its_error_gets_the_reason_instead(
    project, lead, monkeypatch
):
    def too_slow(**_):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(snapshots, "curation_run", too_slow)
    job = SnapshotJob.objects.create(
        project=project, created_by=lead, filter_settings=FilterSettings().as_dict()
    )
    snapshot_job_task.delay(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("Stopped: the job took longer than 1 hour, its time limit.")


def test_the_service_writes_the_time_limit_reason_itself_so_no_reader_sees_the_bare_exception(
    project, lead, monkeypatch
):
    """The snapshot service catches Exception and fails its job; the row it writes already gives the reason
    (a page polling the row in between once read 'SoftTimeLimitExceeded: …')."""
    written: list[str] = []
    mark_finished = SnapshotJob.mark_finished

    def recording(self, status, **fields):
        written.append(fields.get("error", ""))
        return mark_finished(self, status, **fields)

    def too_slow(**_):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(SnapshotJob, "mark_finished", recording)
    monkeypatch.setattr(snapshots, "curation_run", too_slow)
    job = SnapshotJob.objects.create(
        project=project, created_by=lead, filter_settings=FilterSettings().as_dict()
    )
    snapshot_job_task.delay(job.pk)
    assert written == [written[0]] and written[0].startswith("Stopped: the job took longer than 1 hour")


def test_a_service_that_returns_without_finishing_the_job_leaves_it_failed_not_running(
    project, lead, monkeypatch
):
    monkeypatch.setattr(services, "import_run", lambda *, job: job.mark_running())
    job = import_job(project, lead)
    import_file.delay(job.pk)
    job.refresh_from_db()
    assert (job.status, job.error) == (
        JobStatus.FAILED, "The worker returned without finishing the job (a bug); Retry starts it again.",
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ Retry


def failed_import(project, lead) -> ImportJob:
    job = as_running(import_job(project, lead), holder=ELSEWHERE, silent_seconds=300, attempts=3)
    jobs.recover_stalled_jobs()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    return job


def retry_url(job: BackgroundJob) -> str:
    return reverse("job_retry", args=[job.project_id, job.job_kind, job.pk])


def test_the_failed_job_page_offers_retry(lead_client, project, lead):
    job = failed_import(project, lead)
    page = lead_client.get(reverse("import_progress", args=[project.pk, job.pk])).content.decode()
    assert f'action="{retry_url(job)}"' in page


def test_a_lead_retries_a_failed_job_through_its_task(
    lead_client, project, lead, django_capture_on_commit_callbacks
):
    job = failed_import(project, lead)
    back = reverse("import_progress", args=[project.pk, job.pk])

    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(retry_url(job), {"next": back})
    assert (response.status_code, response.url) == (302, back)
    job.refresh_from_db()
    assert (job.status, job.error, job.attempts, job.imported) == (JobStatus.SUCCEEDED, "", 1, 3)


def test_a_retry_from_htmx_refreshes_the_page(lead_client, project, lead):
    job = failed_import(project, lead)

    response = lead_client.post(retry_url(job), HTTP_HX_REQUEST="true")
    assert (response.status_code, response["HX-Refresh"]) == (200, "true")
    job.refresh_from_db()
    assert (job.status, job.error, job.done, job.finished_at) == (JobStatus.QUEUED, "", 0, None)


def test_a_retry_never_redirects_off_site(lead_client, project, lead):
    job = failed_import(project, lead)
    response = lead_client.post(retry_url(job), {"next": "https://evil.example/"})
    assert response.url == reverse("project_detail", args=[project.pk])


def test_a_job_that_has_not_failed_is_not_retried(lead_client, project, lead):
    job = as_running(import_job(project, lead), holder=ELSEWHERE, silent_seconds=5)
    lead_client.post(retry_url(job))
    job.refresh_from_db()
    assert (job.status, job.lease_holder) == (JobStatus.RUNNING, ELSEWHERE)


def test_an_annotator_cannot_retry(annotator_client, project, lead):
    job = failed_import(project, lead)
    assert annotator_client.post(retry_url(job)).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_an_outsider_does_not_learn_the_job_exists(outsider_client, project, lead):
    job = failed_import(project, lead)
    assert outsider_client.post(retry_url(job)).status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_an_unknown_kind_of_job_is_not_found(lead_client, project, lead):
    job = failed_import(project, lead)
    assert lead_client.post(reverse("job_retry", args=[project.pk, "auth.user", job.pk])).status_code == 404
