"""Routing signals follow new LLM labels by themselves: an import that brings them (through its task, eager
here and a real worker below) and a labelling run each queue one signals run — none without LLM labels, no
second one while one is queued, none again when the import's message is delivered twice."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import SampleSignals, SignalsRun
from annotation.routing.signals import signals_run_after_new_labels
from synthstudio import services
from synthstudio.importing import ColumnMapping
from synthstudio.models import JobStatus, LLMAnnotation, Sample
from synthstudio.tasks import import_file
from tests.worker import wait_for_job

LABELLED_CSV = (
    b"text,llm,conf\n"
    b"Loved every minute.,positive,0.9\n"
    b"Utterly boring.,negative,0.7\n"
    b"Not sure what to think.,positive,0.55\n"
)


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def start_import(project, lead, content: bytes, **mapping):
    job = services.import_create(project=project, user=lead, upload=SimpleUploadedFile("rows.csv", content))
    services.import_start(job=job, mapping=ColumnMapping(text_columns=["text"], **mapping))
    return job


def test_an_import_with_llm_labels_computes_the_signals_without_a_button(
    project, lead, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = start_import(project, lead, LABELLED_CSV, llm_label_column="llm", llm_confidence_column="conf")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    run = SignalsRun.objects.get(project=project)
    assert (run.status, run.created_by) == (JobStatus.SUCCEEDED, lead)
    assert SampleSignals.objects.filter(sample__project=project).count() == 3

    with django_capture_on_commit_callbacks(execute=True):  # the same message delivered again
        import_file.delay(job.pk)
    assert SignalsRun.objects.filter(project=project).count() == 1


def test_an_import_into_a_project_without_llm_labels_queues_no_signals_run(
    project, lead, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = start_import(project, lead, b"text\nA joy.\nA chore.\n")
    job.refresh_from_db()
    assert (job.status, job.imported) == (JobStatus.SUCCEEDED, 2)
    assert not SignalsRun.objects.exists()


def test_a_failed_import_queues_no_signals_run(project, lead, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = start_import(project, lead, b"text,llm\nA joy.,not-a-label\n", llm_label_column="llm")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert not SignalsRun.objects.exists()


def test_no_second_run_is_queued_while_one_waits(project, lead, samples):
    LLMAnnotation.objects.create(sample=samples[0], label="positive", method="imported")
    queued = SignalsRun.objects.create(project=project, status=JobStatus.QUEUED)
    assert signals_run_after_new_labels(project=project, user=lead) == queued
    assert SignalsRun.objects.count() == 1


@pytest.mark.worker
def test_the_worker_computes_the_signals_after_an_import_with_llm_labels(
    celery_worker_process, project, lead
):
    job = start_import(project, lead, LABELLED_CSV, llm_label_column="llm", llm_confidence_column="conf")
    job = wait_for_job(job, celery_worker_process)
    assert job.status == JobStatus.SUCCEEDED
    deadline = time.monotonic() + 30  # the task queues the run just after it marked the import finished
    while not SignalsRun.objects.filter(project=project).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    run = wait_for_job(SignalsRun.objects.get(project=project), celery_worker_process)
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert (
        SampleSignals.objects.filter(sample__project=project).count()
        == Sample.objects.filter(project=project).count()
        == 3
    )
