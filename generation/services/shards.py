"""Sharded runs: one run's items sent by several workers (processes, machines) at once.

A run started with `shards=N` (run_start) has N `GenerationShard` rows; item i belongs to shard i mod N. Each
shard is a background job of its own (task `generation.run_shard`, through synthstudio.jobs.run_job: a lease
per shard, a heartbeat, stall recovery), executed by `RunExecution(run, shard)` with 1/N of the endpoint's
concurrency bound. The RPM/TPM limits are the endpoint's shared budget (generation.rate_limit): every shard,
and every other run sending to the endpoint, takes blocks of permits from one row, so the N workers
together never exceed the limits, and a shard that finishes early leaves its part to the others. The
guarantees are those of an unsharded run: results are committed per batch with the call cache rows, a
resumed shard skips finished items and re-sends no finished call, each item gets one sample.

The run's own task (`generation.run`) is the coordinator (`run_coordinate`): it queues the other shards, sends
shard 0 itself, then takes over any shard nobody holds (queued, or held by a dead worker) while it waits, sums
the shards' progress into the run row (the run page shows the sums and the shards), and finishes the run once
every shard ended. If the coordinator's worker dies, stall recovery queues the run task again and the next
coordinator carries on (finished shards stay finished).

Why the concurrency is split into fixed shares rather than counted in a shared store: it bounds requests in
flight, which change several hundred times a second; a fixed share needs no store at that rate. The cost: a
shard that finishes early leaves its share of the concurrency unused until the run ends."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from generation.models import GenerationRun, GenerationShard
from synthstudio.jobs import ENDED, enqueue, process_alive_here
from synthstudio.models import JobStatus

PROGRESS_FIELDS = (
    "done",
    "failed",
    "cached",
    "garbage",
    "samples_created",
    "prompt_tokens",
    "completion_tokens",
    "cost",
)
POLL_SECONDS = 0.5


def sum_shard_progress(run: GenerationRun, *, beat: bool = False) -> None:
    """The run's counters are the sums of its shards' (one aggregate over N rows, one update). Only the
    coordinator beats the run's heartbeat (`beat`): shards beating it would hide a dead coordinator from the
    stall recovery."""
    sums = GenerationShard.objects.filter(run=run).aggregate(**{name: Sum(name) for name in PROGRESS_FIELDS})
    values = {name: value or 0 for name, value in sums.items()}
    if beat:
        values["heartbeat_at"] = timezone.now()
    GenerationRun.objects.filter(pk=run.pk).update(**values)


def shard_execute(*, shard_id: int) -> GenerationShard:
    """The shard task body: claim the shard, send its pending items, finish the shard. Safe to call again."""
    from generation.services.runs import RunExecution

    shard = GenerationShard.objects.select_related("run__config__codebook", "run__endpoint").get(pk=shard_id)
    run = shard.run
    if shard.is_finished:
        return shard
    if run.status == JobStatus.CANCELLED:
        shard.mark_finished(JobStatus.CANCELLED, message="Cancelled with its run.")
        return shard
    execution = RunExecution(run, shard)
    if not execution.claim():
        return shard
    execution.execute()
    execution.flush(force=True)
    shard.refresh_from_db()
    if shard.status != JobStatus.RUNNING or shard.lease != execution.lease:
        return shard  # cancelled, or another execution owns it now
    counters = execution.counters
    if execution.give_up:
        shard.mark_finished(
            JobStatus.FAILED,
            error=f"The endpoint could not be reached after retries: {execution.last_transport_error}",
        )
    elif execution.pending_items().exists():
        shard.mark_finished(JobStatus.FAILED, error="The shard stopped before every item was sent.")
    else:
        shard.mark_finished(JobStatus.SUCCEEDED, message=f"{counters.done} requests.")
    return shard


def run_coordinate(run: GenerationRun) -> GenerationRun:
    """The run task of a sharded run (see the module docstring). Returns when every shard ended, or when the
    run was cancelled or taken over by another coordinator (Resume)."""
    from generation.services.runs import RunExecution
    from generation.tasks import generation_shard_task

    coordinator = RunExecution(run)  # owns the run row through its lease; sends nothing itself
    if not coordinator.claim():
        return run
    shards = list(GenerationShard.objects.filter(run=run))
    for shard in shards:
        if shard.number != 0 and shard.status not in ENDED:
            enqueue(generation_shard_task, shard.pk)
    first = next(shard for shard in shards if shard.number == 0)
    generation_shard_task.apply(args=[first.pk])  # this worker sends shard 0 (run_job's lease and claim)
    while True:
        if coordinator.should_stop():
            return run
        sum_shard_progress(run, beat=True)
        unfinished = GenerationShard.objects.filter(run=run).exclude(status__in=ENDED)
        if not unfinished.exists():
            break
        orphan = orphaned_shard(run)
        if orphan is not None:  # run_job claims it only if nobody live holds it
            generation_shard_task.apply(args=[orphan.pk])
        time.sleep(POLL_SECONDS)
    return finish_sharded_run(run, coordinator.lease)


def orphaned_shard(run: GenerationRun) -> GenerationShard | None:
    """An unfinished shard nobody is sending: queued (no worker took its message yet), held by a process of
    this host that died (queued again here at once, compare-and-set: no need to wait for its heartbeat to go
    stale), or silent for JOB_STALL_SECONDS (a worker elsewhere died)."""
    unfinished = GenerationShard.objects.filter(run=run).exclude(status__in=ENDED)
    for shard in unfinished.filter(status=JobStatus.RUNNING).exclude(lease_holder=""):
        if holder_died_here(shard.lease_holder):
            unfinished.filter(pk=shard.pk, status=JobStatus.RUNNING, lease_holder=shard.lease_holder).update(
                status=JobStatus.QUEUED, lease_holder="", message="Its worker died; queued again."
            )
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALL_SECONDS)
    return (
        unfinished.filter(status=JobStatus.QUEUED).first()
        or unfinished.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale).first()
    )


def holder_died_here(holder: str) -> bool:
    """Whether a lease holder (pid@host) names a process of this host that is gone."""
    return holder.partition("@")[2] == socket.gethostname() and not process_alive_here(holder)


def finish_sharded_run(run: GenerationRun, lease: str) -> GenerationRun:
    sum_shard_progress(run, beat=True)
    run.refresh_from_db()
    if run.status != JobStatus.RUNNING or run.lease != lease:
        return run
    from generation.services.runs import run_finish

    failed = list(GenerationShard.objects.filter(run=run, status=JobStatus.FAILED))
    run_finish(
        run,
        failure="; ".join(f"{shard}: {shard.error}" for shard in failed) + "." if failed else "",
        done=run.done,
        samples_created=run.samples_created,
        failed=run.failed,
        garbage=run.garbage,
        where=f" on {run.shard_count} shards",
    )
    return run
