"""A real Celery worker process: an import runs through it, and the "no worker is running" banner tracks it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from synthstudio import services
from synthstudio.importing import ColumnMapping
from synthstudio.models import JobStatus, Sample, WorkerHeartbeat
from tests.worker import wait_for_job

BANNER = "No worker is running"


@pytest.mark.worker
def test_it_runs_an_import_through_a_real_worker(celery_worker_process, project, lead, settings, tmp_path):
    settings.VAR_DIR = tmp_path  # the upload lands here; the worker reads it by its absolute path
    upload = SimpleUploadedFile(
        "reviews.csv", b"text,gold\nA joy.,positive\nA chore.,negative\nA joy.,positive\n"
    )
    job = services.import_create(project=project, user=lead, upload=upload)

    services.import_start(job=job, mapping=ColumnMapping(text_columns=["text"], gold_label_column="gold"))
    job = wait_for_job(job, celery_worker_process)

    assert (job.status, job.imported, job.duplicates) == (JobStatus.SUCCEEDED, 2, 1)
    assert sorted(Sample.objects.filter(project=project).values_list("final_label", flat=True)) == [
        "negative",
        "positive",
    ]


@pytest.mark.worker
def test_it_shows_the_no_worker_banner_only_while_no_worker_is_alive(celery_worker_process, client, lead):
    client.force_login(lead)
    assert WorkerHeartbeat.objects.filter(hostname=celery_worker_process.hostname).exists()
    assert BANNER not in client.get(reverse("worker_status")).content.decode()

    celery_worker_process.stop()

    assert BANNER in client.get(reverse("worker_status")).content.decode()


@pytest.mark.worker
def test_it_lets_a_new_worker_take_over_after_a_crash(celery_worker_process, client, lead):
    client.force_login(lead)
    crashed = celery_worker_process.hostname

    celery_worker_process.restart_after_crash()

    assert celery_worker_process.hostname != crashed and celery_worker_process.is_running
    assert BANNER not in client.get(reverse("worker_status")).content.decode()
