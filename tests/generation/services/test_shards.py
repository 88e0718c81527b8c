"""Sharded runs in one process (tasks eager): items split across shards, each shard under its share of the
endpoint's concurrency, progress summed on the run, a shard held by a dead worker taken over without re-sending a
finished call, cancel. The same through real worker processes is in tests/generation/test_worker.py."""

from __future__ import annotations

import socket
import subprocess
from datetime import timedelta

import pytest
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from generation.llm.client import EndpointSettings
from generation.models import GenerationItem, GenerationShard, ItemStatus
from generation.services.runs import run_cancel, run_execute, run_start, shard_count_for
from generation.services.shards import run_coordinate, shard_execute
from synthstudio.models import JobStatus
from tests.generation.test_runs import endpoint_for, make_config

pytestmark = pytest.mark.django_db


def most_in_flight(server) -> int:
    """The most requests the server was answering at once (from its arrival and completion times)."""
    events = sorted([(at, 1) for at in server.received_at] + [(at, -1) for at in server.completed_at])
    current = peak = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


def test_shares_split_the_concurrency_and_keep_the_rate_limits_whole_for_the_shared_budget():
    endpoint = EndpointSettings(base_url="http://x", model="m", max_concurrency=5, rpm=3, tpm=7)
    share = endpoint.share_concurrency(2)
    assert (share.max_concurrency, share.rpm, share.tpm) == (2, 3, 7)
    assert endpoint.share_concurrency(1) is endpoint
    assert endpoint.share_concurrency(9).max_concurrency == 1


def test_the_shard_count_is_capped_so_that_no_share_is_zero(project, openai_server):
    endpoint = endpoint_for(project, openai_server, max_concurrency=3, rpm=2)
    assert shard_count_for(endpoint, 4, items=100) == 3  # the concurrency; the RPM is shared, not split
    assert shard_count_for(endpoint, 4, items=2) == 2  # the items
    assert shard_count_for(None, 4, items=100) == 1  # offline runs are not sharded


def test_a_sharded_run_sends_every_item_once_and_sums_its_shards(project, lead, openai_server):
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server), target_count=10)
    run = run_start(config=config, user=lead, enqueue_task=False, shards=2)
    assert run.shard_count == 2
    assert list(run.items.values_list("shard", flat=True)) == [0, 1] * 5
    run = run_execute(run_id=run.pk)
    assert run.status == JobStatus.SUCCEEDED and run.done == 10 and run.samples_created == 10
    assert "on 2 shards" in run.message
    shards = list(GenerationShard.objects.filter(run=run))
    assert [(s.status, s.done, s.total) for s in shards] == [(JobStatus.SUCCEEDED, 5, 5)] * 2
    assert sum(s.prompt_tokens for s in shards) == run.prompt_tokens > 0
    assert openai_server.request_count == 10 and len(set(openai_server.body_hashes())) == 10
    per_item = GenerationItem.objects.filter(run=run).annotate(n=Count("samples")).values_list("n", flat=True)
    assert list(per_item) == [1] * 10


def test_a_shard_sends_under_its_share_of_the_concurrency(project, lead, openai_server):
    openai_server.latency_ms = 60
    endpoint = endpoint_for(project, openai_server, max_concurrency=4)
    config = make_config(project, lead, endpoint=endpoint, target_count=16)
    run = run_start(config=config, user=lead, enqueue_task=False, shards=2)
    shard = GenerationShard.objects.get(run=run, number=1)
    shard = shard_execute(shard_id=shard.pk)
    assert shard.status == JobStatus.SUCCEEDED and shard.done == 8
    assert most_in_flight(openai_server) == 2  # half of the endpoint's 4
    run.refresh_from_db()
    assert run.done == 8 and run.status == JobStatus.QUEUED  # progress summed; the coordinator finishes it


def dead_process_here() -> str:
    """The lease holder name of a process of this host that has exited."""
    child = subprocess.Popen(["true"])  # noqa: S607 - a harmless child, to get the pid of an exited process
    child.wait()
    return f"{child.pid}@{socket.gethostname()}"


@pytest.mark.parametrize(
    ("holder", "silent_seconds"),
    [
        ("999999999@no-such-host", 30),  # a worker elsewhere that stopped beating
        (None, 0),  # a worker of this host that died a moment ago: no need to wait for its heartbeat
    ],
)
def test_a_shard_held_by_a_dead_worker_is_taken_over_without_resending_finished_calls(
    project, lead, openai_server, settings, holder, silent_seconds
):
    settings.JOB_STALL_SECONDS = 10
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server), target_count=8)
    run = run_start(config=config, user=lead, enqueue_task=False, shards=2)
    dead = GenerationShard.objects.get(run=run, number=1)
    # half of shard 1 went through before its worker died: sent, answered, committed
    shard_items = list(GenerationItem.objects.filter(run=run, shard=1).order_by("index"))
    GenerationItem.objects.filter(pk__in=[item.pk for item in shard_items[2:]]).update(shard=9)
    shard_execute(shard_id=dead.pk)
    GenerationItem.objects.filter(shard=9).update(shard=1)
    finished_before = openai_server.request_count
    assert finished_before == 2
    GenerationShard.objects.filter(pk=dead.pk).update(
        status=JobStatus.RUNNING,
        finished_at=None,
        lease_holder=holder or dead_process_here(),
        heartbeat_at=timezone.now() - timedelta(seconds=silent_seconds),
    )
    run.refresh_from_db()
    run = run_coordinate(run)
    assert run.status == JobStatus.SUCCEEDED and run.done == 8
    assert openai_server.request_count == 8  # 2 before the "crash" + 6: nothing finished was sent again
    assert GenerationShard.objects.get(pk=dead.pk).status == JobStatus.SUCCEEDED
    assert GenerationItem.objects.filter(run=run, status=ItemStatus.DONE).count() == 8


def test_cancelling_a_sharded_run_cancels_its_shards_and_nothing_more_is_sent(project, lead, openai_server):
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server), target_count=6)
    run = run_start(config=config, user=lead, enqueue_task=False, shards=3)
    run_cancel(run=run)
    assert set(GenerationShard.objects.filter(run=run).values_list("status", flat=True)) == {
        JobStatus.CANCELLED
    }
    assert run_execute(run_id=run.pk).status == JobStatus.CANCELLED
    assert openai_server.request_count == 0


def test_the_run_page_lists_the_shards(lead_client, project, lead, openai_server):
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server), target_count=4)
    run = run_execute(run_id=run_start(config=config, user=lead, enqueue_task=False, shards=2).pk)
    page = lead_client.get(reverse("generation:run_detail", args=[project.pk, run.pk])).content.decode()
    assert 'id="shards"' in page and page.count("Succeeded") >= 2


def test_the_run_form_spreads_a_run_over_n_workers_and_its_page_shows_the_sums(
    lead_client, project, lead, openai_server, django_capture_on_commit_callbacks
):
    config = make_config(project, lead, endpoint=endpoint_for(project, openai_server), target_count=6)
    form_page = lead_client.get(reverse("generation:config_detail", args=[project.pk, config.pk]))
    assert (
        "Spread over N workers" in form_page.content.decode()
        and 'name="shards"' in form_page.content.decode()
    )
    with django_capture_on_commit_callbacks(execute=True):  # eager Celery: the run is sent at commit
        response = lead_client.post(
            reverse("generation:run_start", args=[project.pk, config.pk]), {"count": 6, "shards": "3"}
        )
    run = config.runs.get()
    assert run.shard_count == 3 and run.status == JobStatus.SUCCEEDED
    assert [shard.done for shard in GenerationShard.objects.filter(run=run)] == [2, 2, 2]
    page = lead_client.get(response.url).content.decode()
    assert "3 workers send this run at once" in page and run.done == 6
    assert openai_server.request_count == 6


def test_the_run_form_without_an_endpoint_has_no_worker_count_and_defaults_to_one(
    lead_client, project, lead, django_capture_on_commit_callbacks
):
    config = make_config(project, lead, target_count=2)  # offline
    body = lead_client.get(reverse("generation:config_detail", args=[project.pk, config.pk])).content.decode()
    assert 'name="shards"' not in body
    with django_capture_on_commit_callbacks(execute=True):
        lead_client.post(reverse("generation:run_start", args=[project.pk, config.pk]), {"count": 2})
    assert config.runs.get().shard_count == 1
