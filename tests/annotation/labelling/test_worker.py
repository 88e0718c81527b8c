"""A labelling run through a REAL Celery worker against the local OpenAI-compatible server, including a
worker crash half-way: the resumed run re-sends no finished call and labels every sample once."""

from __future__ import annotations

import time

import pytest

from annotation.labelling.services import labelling_run_resume, labelling_run_start
from generation.models import LLMEndpoint
from generation.testing.openai_server import OpenAICompatibleTestServer
from synthstudio.models import JobStatus, LabelMethod, LLMAnnotation, Sample
from tests.worker import wait_for_job


@pytest.mark.worker
def test_a_run_survives_a_worker_crash_without_paying_twice(celery_worker_process, project, lead):
    samples = [Sample.objects.create(project=project, text=f"film review {i}") for i in range(12)]
    with OpenAICompatibleTestServer(latency_ms=300, responder=lambda body, index: "A") as server:
        endpoint = LLMEndpoint.objects.create(
            project=project, name="test", base_url=server.base_url, model="m", max_concurrency=2
        )
        run = labelling_run_start(
            project=project,
            user=lead,
            method=LabelMethod.PROMPT_VARIANTS,
            endpoint=endpoint,
            samples_per_item=2,
        )
        deadline = time.monotonic() + 120
        while server.request_count < 6 and time.monotonic() < deadline:  # wait until it is half-way
            time.sleep(0.1)
        celery_worker_process.restart_after_crash()
        labelling_run_resume(run=run)  # what the Resume button does; a redelivered task is harmless too
        run = wait_for_job(run, celery_worker_process)
        hashes = server.body_hashes()

    assert run.status == JobStatus.SUCCEEDED and run.done == 12
    assert LLMAnnotation.objects.filter(run_ref=run.run_ref).count() == 12
    assert all(s.llm_annotations.get(is_current=True).label == "positive" for s in samples)
    # calls answered before the crash come from the cache after it: only calls in flight (or answered but not
    # yet written) when the worker died may be sent twice — at most a few, bounded by the concurrency
    assert run.cached > 0
    assert len(hashes) - len(set(hashes)) <= 2 * endpoint.max_concurrency
