"""Jobs whose REAL worker is SIGKILLed mid-work never stay "Running": the next worker's stall detector queues
them again (they resume, or restart inside their one transaction) or, out of attempts, fails them with a
reason that Retry clears. Also a real prefork worker enforcing a soft time limit. See tests/worker.py."""

from __future__ import annotations

import csv
import io
import os
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.labelling import services as annotation_services
from annotation.labelling.services import CHUNK
from annotation.models import LabellingRun
from annotation.tasks import labelling_run_task
from evaluation.curation.filters import FilterSettings
from evaluation.curation.services import snapshot_job_start
from evaluation.models import Snapshot, SnapshotItem
from generation.models import LLMEndpoint
from generation.testing.openai_server import OpenAICompatibleTestServer
from synthstudio import jobs, services
from synthstudio.importing import ColumnMapping
from synthstudio.models import FinalSource, JobStatus, LabelMethod, LLMAnnotation, Sample
from tests.worker import JOB_STALL_SECONDS, wait_for_job


def wait_until(job, condition, worker, *, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if condition(job):
            return
        assert not job.is_finished, f"{type(job).__name__} ended before the kill: {job.status} {job.error}"
        time.sleep(0.02)
    raise AssertionError(f"{type(job).__name__} {job.pk} never got there; worker log:\n{worker.log_tail()}")


def film_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "gold"])
    for i in range(rows):
        writer.writerow(
            [f"Review {i}: the film was long enough to talk about.", "positive" if i % 2 else "negative"]
        )
    return out.getvalue().encode()


@pytest.mark.worker
def test_an_import_killed_mid_write_lands_nothing_and_the_next_worker_imports_it_all(
    celery_worker_process, project, lead, settings, tmp_path
):
    settings.VAR_DIR = tmp_path
    rows = 20_000  # about 2 s of writing in one transaction on SQLite
    job = services.import_create(
        project=project, user=lead, upload=SimpleUploadedFile("films.csv", film_csv(rows))
    )
    services.import_start(job=job, mapping=ColumnMapping(text_columns=["text"], gold_label_column="gold"))

    wait_until(
        job,
        lambda j: j.status == JobStatus.RUNNING and j.total == 0 and j.done == rows,
        celery_worker_process,
    )
    time.sleep(0.3)  # inside the write transaction
    celery_worker_process.kill_hard()

    job.refresh_from_db()
    assert (job.status, Sample.objects.filter(project=project).count()) == (JobStatus.RUNNING, 0)
    celery_worker_process.start()
    job = wait_for_job(job, celery_worker_process, timeout=60)
    assert (job.status, job.attempts, job.imported) == (JobStatus.SUCCEEDED, 2, rows)
    assert Sample.objects.filter(project=project).count() == rows


@pytest.mark.worker
def test_a_snapshot_killed_mid_build_fails_with_the_reason_then_retry_builds_it_once(
    celery_worker_process, project, lead, client, settings
):
    count = 10_000  # five committed batches of the hidden snapshot
    Sample.objects.bulk_create(
        Sample(project=project, text=f"Review {i}: worth a look.", text_hash=f"{i:064d}", final_label="positive",
               final_source=FinalSource.HUMAN, final_weight=1.0)
        for i in range(count)
    )  # fmt: skip
    job = snapshot_job_start(project=project, user=lead, settings=FilterSettings())
    wait_until(
        job, lambda j: 0 < j.done < count, celery_worker_process
    )  # rows of the hidden snapshot written
    celery_worker_process.kill_hard()

    settings.JOB_MAX_ATTEMPTS = 1
    time.sleep(JOB_STALL_SECONDS + 0.5)
    assert [r.job_id for r in jobs.recover_stalled_jobs()] == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "stopped once (no heartbeat for 2 seconds)" in job.error
    assert not Snapshot.objects.ready().exists()

    client.force_login(lead)
    assert client.post(reverse("job_retry", args=[project.pk, job.job_kind, job.pk])).status_code == 302
    celery_worker_process.start()
    job = wait_for_job(job, celery_worker_process, timeout=60)
    assert (job.status, job.error, job.attempts) == (JobStatus.SUCCEEDED, "", 1)
    assert Snapshot.objects.count() == 1 and Snapshot.objects.ready().count() == 1
    assert SnapshotItem.objects.filter(snapshot=job.snapshot).count() == count


@pytest.mark.worker
def test_a_labelling_run_killed_mid_run_resumes_under_the_next_worker_skipping_done_samples(
    celery_worker_process, project, lead
):
    count = CHUNK + 36  # the run records its labels chunk by chunk: kill it after the first chunk
    Sample.objects.bulk_create(
        Sample(project=project, text=f"film review {i}", text_hash=f"{i:064d}") for i in range(count)
    )
    with OpenAICompatibleTestServer(latency_ms=100, responder=lambda body, index: "A") as server:
        endpoint = LLMEndpoint.objects.create(
            project=project, name="test", base_url=server.base_url, model="m", max_concurrency=4
        )
        run = annotation_services.labelling_run_start(
            project=project,
            user=lead,
            method=LabelMethod.PROMPT_VARIANTS,
            endpoint=endpoint,
            samples_per_item=1,
        )
        wait_until(run, lambda r: r.done >= CHUNK, celery_worker_process)
        celery_worker_process.kill_hard()
        labelled_before = set(
            LLMAnnotation.objects.filter(run_ref=run.run_ref).values_list("sample_id", flat=True)
        )

        celery_worker_process.start()  # nobody presses Resume: the new worker finds the stalled run itself
        run = wait_for_job(run, celery_worker_process, timeout=60)
        hashes = server.body_hashes()

    assert (run.status, run.attempts, run.done) == (JobStatus.SUCCEEDED, 2, count)
    assert len(labelled_before) >= CHUNK
    labelled = list(LLMAnnotation.objects.filter(run_ref=run.run_ref).values_list("sample_id", flat=True))
    assert len(labelled) == len(set(labelled)) == count  # every sample once: the first chunk was skipped
    # calls answered before the kill come from the cache; only those in flight may be sent twice
    assert len(hashes) - len(set(hashes)) <= endpoint.max_concurrency


@pytest.mark.worker
@pytest.mark.skipif(
    os.environ.get("CELERY_BROKER_URL", "").startswith("redis"),
    reason="flaky on Redis (1 of 3 CI runs: the run stayed Running past 60 s; under investigation); "
    "runs on the default filesystem broker",
)
def test_a_prefork_worker_stops_a_run_at_its_soft_time_limit_and_the_run_says_why(
    celery_worker_process, project, lead
):
    celery_worker_process.stop()
    celery_worker_process.start(pool="prefork")  # the solo pool enforces no time limits
    for i in range(40):
        Sample.objects.create(project=project, text=f"film review {i}")
    with OpenAICompatibleTestServer(latency_ms=200, responder=lambda body, index: "A") as server:
        endpoint = LLMEndpoint.objects.create(
            project=project, name="test", base_url=server.base_url, model="m", max_concurrency=1
        )
        run = LabellingRun.objects.create(
            project=project, created_by=lead, codebook=project.codebook, method=LabelMethod.PROMPT_VARIANTS,
            endpoint=endpoint, model_name="m", samples_per_item=1, total=40,
        )  # fmt: skip
        labelling_run_task.apply_async((run.pk,), soft_time_limit=2, time_limit=30)
        run = wait_for_job(run, celery_worker_process, timeout=60)

    assert run.status == JobStatus.FAILED
    assert run.error.startswith("Stopped: the job took longer than 2 seconds, its time limit.")
    assert run.done < 40 and run.finished_at is not None
