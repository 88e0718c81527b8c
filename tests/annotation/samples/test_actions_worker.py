"""A bulk action over more than INLINE_LIMIT samples goes through the broker to a REAL Celery worker
(tests/worker.py), which applies it in batches and leaves the job succeeded with its outcome."""

from __future__ import annotations

import pytest

from annotation.samples import actions
from synthstudio.models import JobStatus, Sample, SampleAction, SampleActionJob
from synthstudio.sample_search import SampleSearch
from tests.worker import wait_for_job


@pytest.mark.worker
def test_a_large_exclusion_runs_in_a_real_worker(celery_worker_process, project, lead):
    count = actions.INLINE_LIMIT + 250
    Sample.objects.bulk_create(
        [Sample(project=project, text=f"review {i}", text_hash=str(i)) for i in range(count)]
    )
    Sample.objects.create(project=project, text="not matching the filter")

    job = actions.sample_action_start(
        project=project, user=lead, action=SampleAction.EXCLUDE, search=SampleSearch(q="review ")
    )

    assert isinstance(job, SampleActionJob)
    wait_for_job(job, celery_worker_process)
    job.refresh_from_db()
    assert (job.status, job.done, job.changed, job.skipped) == (JobStatus.SUCCEEDED, count, count, 0), (
        job.error
    )
    assert job.message == f"Excluded {count} samples from snapshots."
    assert Sample.objects.filter(excluded_from_snapshots=True).count() == count
    assert not Sample.objects.get(text="not matching the filter").excluded_from_snapshots
