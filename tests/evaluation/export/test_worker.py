"""A Parquet export and a label-issue run go through a real Celery worker (integration)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from annotation.review.final_labels import final_label_refresh
from evaluation.curation import services as curation_services
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from synthstudio.models import JobStatus, LabelMethod, LLMAnnotation
from tests.worker import wait_for_job


@pytest.mark.worker
def test_a_parquet_export_is_written_by_a_real_worker(celery_worker_process, project, lead, samples):
    for sample, name in zip(samples, ["positive", "negative", "positive", "negative"], strict=True):
        LLMAnnotation.objects.create(
            sample=sample, label=name, distribution={name: 0.9}, confidence=0.9, method=LabelMethod.IMPORTED
        )
        final_label_refresh(sample=sample)
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    job = curation_services.export_job_start(snapshot=snapshot, file_format="parquet", user=lead)
    job = wait_for_job(job, celery_worker_process)
    assert job.status == JobStatus.SUCCEEDED, job.error
    path = Path(job.file_path)
    try:
        assert sorted(pq.read_table(path).column("text").to_pylist()) == sorted(s.text for s in samples)
    finally:
        path.unlink(missing_ok=True)  # the worker writes under its own MEDIA_ROOT
