"""A generation run through a real Celery worker that is SIGKILLed mid-run: nothing finished is lost or
sent again after the resume; a sharded run on two workers survives losing either of them."""

from __future__ import annotations

import time

import pytest
from django.db.models import Count

from generation.models import GenerationItem, GenerationRun, GenerationShard, ItemStatus, LLMEndpoint
from generation.prompts import DEFAULT_TEMPLATE
from generation.services.configs import config_create_version
from generation.services.runs import run_resume, run_start
from synthstudio.models import JobStatus
from tests.worker import CeleryWorkerProcess


def wait_for(run: GenerationRun, condition, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if condition(run):
            return
        time.sleep(0.1)
    raise AssertionError(f"Timed out: run {run.status} {run.done}/{run.total}")


@pytest.mark.worker
def test_killing_the_worker_mid_run_loses_nothing_and_resends_no_finished_call(
    celery_worker_process, project, lead, openai_server
):
    openai_server.latency_ms = 100
    endpoint = LLMEndpoint.objects.create(
        project=project,
        name="local",
        base_url=openai_server.base_url,
        model="test-model",
        max_concurrency=4,
        max_retries=1,
    )
    config = config_create_version(
        project=project,
        user=lead,
        name="crash",
        values={
            "endpoint": endpoint,
            "template": DEFAULT_TEMPLATE,
            "target_count": 40,
            "dimensions": [{"name": "topic", "values": ["plot", "acting"]}],
        },
    )
    run = run_start(config=config, user=lead)
    wait_for(run, lambda r: r.done >= 10)
    celery_worker_process.kill_hard()
    done_before_kill = set(
        GenerationItem.objects.filter(run=run, status=ItemStatus.DONE).values_list("index", flat=True)
    )
    seen_before_kill = openai_server.request_count

    celery_worker_process.start()
    run_resume(run=run)
    wait_for(run, lambda r: r.is_finished)

    assert run.status == JobStatus.SUCCEEDED and run.done == 40
    resent = [body["seed"] - config.seed for body in openai_server.requests[seen_before_kill:]]
    assert not set(resent) & done_before_kill
    per_item = GenerationItem.objects.filter(run=run).annotate(n=Count("samples")).values_list("n", flat=True)
    assert list(per_item) == [1] * 40


def held_by(shard: GenerationShard, worker: CeleryWorkerProcess) -> bool:
    return shard.lease_holder.split("@")[0] == str(worker.process.pid)


@pytest.mark.worker
@pytest.mark.parametrize("killed", ["coordinator", "other"])
def test_a_sharded_run_on_two_workers_survives_killing_one_without_duplicate_calls(
    celery_worker_process, project, lead, openai_server, tmp_path, killed
):
    openai_server.latency_ms = 150
    endpoint = LLMEndpoint.objects.create(
        project=project,
        name="local",
        base_url=openai_server.base_url,
        model="test-model",
        max_concurrency=4,
        max_retries=1,
    )
    config = config_create_version(
        project=project,
        user=lead,
        name="sharded",
        values={
            "endpoint": endpoint,
            "template": DEFAULT_TEMPLATE,
            "target_count": 80,
            "dimensions": [{"name": "topic", "values": ["plot", "acting"]}],
        },
    )
    second = CeleryWorkerProcess(
        database_url=celery_worker_process.database_url,
        broker_url=celery_worker_process.broker_url,
        log_dir=tmp_path / "second",
    )
    second.log_dir.mkdir()
    second.start()
    workers = [celery_worker_process, second]
    try:
        run = run_start(config=config, user=lead, shards=2)

        def both_sending(r: GenerationRun) -> bool:
            shards = list(GenerationShard.objects.filter(run=r, status=JobStatus.RUNNING))
            return r.done >= 8 and len({shard.lease_holder for shard in shards}) == 2

        wait_for(run, both_sending)
        coordinator_shard = GenerationShard.objects.get(run=run, number=0)
        victim = next(w for w in workers if held_by(coordinator_shard, w) == (killed == "coordinator"))
        victim.kill_hard()
        done_before_kill = set(
            GenerationItem.objects.filter(run=run, status=ItemStatus.DONE).values_list("index", flat=True)
        )
        seen_before_kill = openai_server.request_count
        wait_for(run, lambda r: r.is_finished, seconds=150)  # the survivor takes the dead worker's shard over
    finally:
        second.kill_hard()

    assert run.status == JobStatus.SUCCEEDED and run.done == 80, run.error
    resent = [body["seed"] - config.seed for body in openai_server.requests[seen_before_kill:]]
    assert not set(resent) & done_before_kill  # no finished call was paid for twice
    assert 0 < len(done_before_kill) < 80
    per_item = GenerationItem.objects.filter(run=run).annotate(n=Count("samples")).values_list("n", flat=True)
    assert list(per_item) == [1] * 80
    assert set(GenerationShard.objects.filter(run=run).values_list("status", flat=True)) == {
        JobStatus.SUCCEEDED
    }
