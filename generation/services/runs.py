"""Generation runs: start (every prompt planned up front), cancel, resume; the execution a worker performs
(LLM or offline, resumable, results written in bulk per batch); stalled runs; rate and time left."""

from __future__ import annotations

import functools
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from generation import prompts
from generation.bulk_writes import insert_rows
from generation.llm.client import (
    CompletionResult,
    EndpointSettings,
    ErrorKind,
    LLMRequest,
    complete_many_sync,
)
from generation.llm.offline import GENERATOR_NAME, OfflineGenerator
from generation.models import (
    GenerationConfig,
    GenerationItem,
    GenerationRun,
    GenerationShard,
    ItemStatus,
)
from generation.services.planning import (
    GenerationContext,
    demo_label,
    generation_context,
    plan_items,
    request_params,
)
from generation.tasks import generation_run_task
from synthstudio.jobs import enqueue
from synthstudio.models import JobStatus, Sample, text_hash

ITEM_RESULT_FIELDS = [
    "steps",
    "status",
    "parse_status",
    "error",
    "raw_output",
    "parsed",
    "label",
    "cached",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "finished_at",
]
TRANSPORT_ERRORS = {ErrorKind.HTTP_ERROR, ErrorKind.TIMEOUT, ErrorKind.CONNECTION}


def run_start(
    *,
    config: GenerationConfig,
    user: Any,
    count: int | None = None,
    weights: dict | None = None,
    previous: GenerationRun | None = None,
    enqueue_task: bool = True,
    shards: int = 1,
) -> GenerationRun:
    """Plan every item (prompts rendered now, so the run is reproducible) and queue the run.

    `shards` > 1 splits the items into that many shards that several workers send at once
    (generation.services.shards), each under its share of the endpoint's concurrency and all of them under
    its one RPM/TPM budget; it is capped at the endpoint's concurrency and the item count. Offline runs are
    not sharded."""
    total = count or config.target_count
    context = generation_context(config)
    planned = plan_items(context, total, weights=weights)
    endpoint = config.endpoint
    shard_count = shard_count_for(endpoint, shards, len(planned))
    with transaction.atomic():
        run = GenerationRun.objects.create(
            project=config.project,
            created_by=user,
            config=config,
            endpoint=endpoint,
            model_name=endpoint.model if endpoint else GENERATOR_NAME,
            total=len(planned),
            round_number=(previous.round_number + 1) if previous else 1,
            previous_round=previous,
            condition_weights=weights or {},
            message="Queued.",
            shard_count=shard_count,
        )
        GenerationItem.objects.bulk_create(
            [
                GenerationItem(
                    run=run,
                    index=item.index,
                    conditions=item.conditions,
                    demos=item.demos,
                    random_words=item.random_words,
                    messages=item.messages,
                    shard=item.index % shard_count,
                )
                for item in planned
            ],
            batch_size=500,
        )
        if shard_count > 1:
            GenerationShard.objects.bulk_create(
                [
                    GenerationShard(
                        project=run.project,
                        created_by=user,
                        run=run,
                        number=number,
                        total=sum(1 for item in planned if item.index % shard_count == number),
                        message="Queued.",
                    )
                    for number in range(shard_count)
                ]
            )
        if enqueue_task:
            enqueue(generation_run_task, run.pk)
    return run


def shard_count_for(endpoint: Any, wanted: int, items: int) -> int:
    """How many shards a run gets: `wanted`, but at most the endpoint's concurrency (each shard's share of
    it must be at least 1) and the item count; 1 for an offline run. The RPM/TPM limits are shared, not
    split (generation.rate_limit), so they do not cap it."""
    if endpoint is None or wanted <= 1:
        return 1
    return max(1, min(wanted, endpoint.max_concurrency, max(1, items)))


def run_cancel(*, run: GenerationRun) -> GenerationRun:
    """Stop a queued or running run; finished items and their samples stay."""
    cancelled = dict(
        status=JobStatus.CANCELLED,
        finished_at=timezone.now(),
        message="Cancelled. Finished items are kept; Resume continues.",
    )
    GenerationRun.objects.filter(pk=run.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        **cancelled
    )
    GenerationShard.objects.filter(run=run, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        **cancelled
    )
    run.refresh_from_db()
    return run


def run_resume(*, run: GenerationRun) -> GenerationRun:
    """Queue the run again: pending items and items that failed to reach the endpoint are sent; finished
    items are skipped and their calls never re-sent (the cache holds every finished answer)."""
    with transaction.atomic():
        GenerationItem.objects.filter(
            run=run, status=ItemStatus.FAILED, parse_status__in=TRANSPORT_ERRORS
        ).update(status=ItemStatus.PENDING, parse_status="", error="")
        GenerationRun.objects.filter(pk=run.pk).update(
            status=JobStatus.QUEUED, finished_at=None, error="", lease="", message="Queued to resume."
        )
        # Shards that ended are queued again; a running shard keeps its lease (its worker may be alive: the
        # coordinator takes it over only when that lease is dead, so no answer in flight is thrown away).
        GenerationShard.objects.filter(
            run=run, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
        ).update(
            status=JobStatus.QUEUED, finished_at=None, error="", lease="", lease_holder="", message="Queued."
        )
        enqueue(generation_run_task, run.pk)
    run.refresh_from_db()
    return run


@dataclass
class RunCounters:
    done: int = 0
    failed: int = 0
    cached: int = 0
    garbage: int = 0
    samples_created: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @classmethod
    def from_items(cls, run: GenerationRun, shard: GenerationShard | None = None) -> RunCounters:
        items = GenerationItem.objects.filter(run=run)
        if shard is not None:
            items = items.filter(shard=shard.number)
        sums = items.aggregate(
            done=Count("id", filter=Q(status=ItemStatus.DONE)),
            failed=Count("id", filter=Q(status=ItemStatus.FAILED)),
            cached=Count("id", filter=Q(cached=True, status=ItemStatus.DONE)),
            garbage=Count("id", filter=Q(status=ItemStatus.FAILED) & ~Q(parse_status__in=TRANSPORT_ERRORS)),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            cost=Sum("cost"),
        )
        samples = Sample.objects.filter(generation_items__in=items).count()
        return cls(**{k: v or 0 for k, v in sums.items()}, samples_created=samples)


@functools.cache
def _item_result_update(vendor: str) -> tuple[list[Any], str]:
    """The result fields of an item and the `UPDATE` statement writing them, for one database backend."""
    fields = [GenerationItem._meta.get_field(name) for name in ITEM_RESULT_FIELDS]
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(GenerationItem._meta.db_table)} SET "
        + ", ".join(f"{quote(field.column)} = %s" for field in fields)
        + f" WHERE {quote(GenerationItem._meta.pk.column)} = %s"
    )
    return fields, sql


def update_item_results(items: list[GenerationItem]) -> None:
    """Write the result fields of a batch of items: one `UPDATE … SET … WHERE id = %s`, executemany'd.

    Why raw SQL: QuerySet.bulk_update (the ORM's way) builds a CASE expression per field and row, and at
    100+ results a second that cost more CPU than everything else in a run. Measured again when services.py
    was split (2,000 items, these 12 fields, Django 5.2, time.process_time in one process), CPU per item:
    SQLite, batches of 5 / 50: executemany 0.04 / 0.035 ms, bulk_update 1.41 / 1.33 ms;
    PostgreSQL 15, batches of 5 / 50: executemany 0.08 / 0.05 ms, bulk_update 1.49 / 1.43 ms.
    So bulk_update costs 18 to 38 times more. Values go through each field's get_db_prep_save, as the ORM's
    own save would do (JSON fields encoded, datetimes adapted). The statement is built once per database
    backend (``_item_result_update``), not per batch."""
    fields, sql = _item_result_update(connection.vendor)
    rows = [
        [field.get_db_prep_save(getattr(item, field.attname), connection) for field in fields] + [item.pk]
        for item in items
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


class RunExecution:
    """One task execution of a run, or of one shard of a sharded run (`shard`: then only that shard's items,
    under the shard's share of the endpoint's limits). Owns the run (or the shard) through `lease`; stops
    when cancelled or when another execution takes the lease over."""

    PROGRESS_SECONDS = 0.5

    def __init__(self, run: GenerationRun, shard: GenerationShard | None = None) -> None:
        self.run = run
        self.shard = shard
        self.owner = (
            GenerationShard.objects.filter(pk=shard.pk) if shard else GenerationRun.objects.filter(pk=run.pk)
        )
        self.config = run.config
        self.lease = uuid.uuid4().hex
        self.counters = RunCounters.from_items(run, shard)
        self.context = generation_context(self.config)
        self.steps = prompts.step_count(self.config.kind, self.config.dialogue_turns)
        self.consecutive_transport_failures = 0
        self.last_transport_error = ""
        self.last_flush = 0.0
        self.give_up = False
        self.unsaved_items: list[GenerationItem] = []
        self.unsaved_samples: list[tuple[GenerationItem, list[Sample]]] = []

    # ownership and progress
    def claim(self) -> bool:
        now = timezone.now()
        claimed = self.owner.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            lease=self.lease, status=JobStatus.RUNNING, heartbeat_at=now, message="Running."
        )
        if claimed:
            self.owner.filter(started_at__isnull=True).update(started_at=now)
        return bool(claimed)

    def should_stop(self) -> bool:
        if self.give_up:
            return True
        status, lease = self.owner.values_list("status", "lease").get()
        if self.shard is not None:
            self.flush()  # also the shard's heartbeat while no answer arrives (polled twice a second)
            if self.run_cancelled():
                return True
        return status != JobStatus.RUNNING or lease != self.lease

    def run_cancelled(self) -> bool:
        return GenerationRun.objects.filter(pk=self.run.pk, status=JobStatus.CANCELLED).exists()

    def flush(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last_flush > self.PROGRESS_SECONDS:
            self.last_flush = time.monotonic()
            self.owner.filter(lease=self.lease).update(heartbeat_at=timezone.now(), **self.counters.__dict__)
            if self.shard is not None:
                from generation.services.shards import sum_shard_progress

                sum_shard_progress(self.run)

    def endpoint_settings(self) -> EndpointSettings:
        """The endpoint's settings; for a shard, its share of the concurrency (the shares add up to at most
        the endpoint's bound). The RPM/TPM limits are not split: every shard (and every other run on the
        endpoint) takes from the endpoint's one shared budget (generation.rate_limit), so a shard that
        finishes early leaves its part to the others."""
        settings_ = EndpointSettings.from_endpoint(self.run.endpoint)
        if self.shard is None:
            return settings_
        return settings_.share_concurrency(self.run.shard_count)

    # results
    def provenance(self, item: GenerationItem, label: str, cached: bool) -> dict:
        config = self.config
        return {
            "generator": GENERATOR_NAME if self.run.is_offline else "llm",
            "offline": self.run.is_offline,
            "run": self.run.pk,
            "round": self.run.round_number,
            "item": item.pk,
            "config": config.pk,
            "config_name": config.name,
            "config_version": config.version,
            "codebook_version": config.codebook.version,
            "kind": config.kind,
            "conditions": item.conditions,
            "demos": [demo["sample_id"] for demo in item.demos],
            "random_words": item.random_words,
            "prompt": item.messages,
            "model": self.run.model_name,
            "tokens": {"prompt": item.prompt_tokens, "completion": item.completion_tokens},
            "cached": cached,
            "label": label,
        }

    def finish_item(self, item: GenerationItem, outputs_per_sample: list[list[Any]], cached: bool) -> None:
        samples = []
        for outputs in outputs_per_sample:
            made = prompts.sample_from_outputs(self.config.kind, outputs, item.conditions)
            if not made["text"].strip():
                continue
            sample = Sample(
                project_id=self.run.project_id,
                text=made["text"],
                fields=made["fields"],
                origin="generated",
                text_hash=text_hash(made["text"]),
            )
            sample.provenance = self.provenance(item, made["label"], cached)
            samples.append(sample)
            item.label = item.label or made["label"]
        if not samples:
            self.fail_item(
                item, ErrorKind.EMPTY_OUTPUT, "Every answer was empty after parsing.", garbage=True
            )
            return
        item.status, item.parse_status, item.finished_at = ItemStatus.DONE, "ok", timezone.now()
        self.unsaved_items.append(item)
        self.unsaved_samples.append((item, samples))
        self.counters.done += 1
        self.counters.cached += cached
        self.counters.samples_created += len(samples)

    def fail_item(self, item: GenerationItem, kind: str, error: str, *, garbage: bool) -> None:
        item.status, item.parse_status, item.error, item.finished_at = (
            ItemStatus.FAILED,
            kind,
            error,
            timezone.now(),
        )
        self.unsaved_items.append(item)
        self.counters.failed += 1
        self.counters.garbage += garbage

    def write_pending(self) -> None:
        """One bulk write per batch of results (samples, their links, the items), then progress."""
        samples = [sample for _, made in self.unsaved_samples for sample in made]
        if samples:
            Sample.objects.bulk_create(samples)
            links = GenerationItem.samples.through
            insert_rows(
                links,
                [
                    links(generationitem_id=item.pk, sample_id=sample.pk)
                    for item, made in self.unsaved_samples
                    for sample in made
                ],
            )
        if self.unsaved_items:
            update_item_results(self.unsaved_items)
        self.unsaved_items, self.unsaved_samples = [], []
        self.flush()

    def apply_result(
        self, item: GenerationItem, step: int, request: LLMRequest, result: CompletionResult
    ) -> None:
        schema = request.json_schema
        item.prompt_tokens += result.prompt_tokens
        item.completion_tokens += result.completion_tokens
        item.cost += result.cost
        item.cached = result.cached if step == 0 else (item.cached and result.cached)
        self.counters.prompt_tokens += result.prompt_tokens
        self.counters.completion_tokens += result.completion_tokens
        self.counters.cost += result.cost
        raw = json.dumps(result.choices) if len(result.choices) > 1 else (result.content or "")
        if result.error_kind in TRANSPORT_ERRORS:
            self.consecutive_transport_failures += 1
            self.last_transport_error = result.error
            self.fail_item(item, result.error_kind, result.error, garbage=False)
            if self.consecutive_transport_failures >= max(3, min(8, self.run_settings_concurrency())):
                self.give_up = True
            return
        self.consecutive_transport_failures = 0
        item.raw_output = raw
        if not result.ok:
            self.fail_item(item, result.error_kind, result.error, garbage=True)
            return
        outputs = [
            parsed if schema else content
            for parsed, content, err in zip(result.parsed, result.choices, result.choice_errors, strict=True)
            if not err
        ]
        # the first step's messages are item.messages; later steps keep their own
        item.steps = [
            *item.steps,
            {
                "messages": request.messages if step else [],
                "outputs": outputs,
                "cached": result.cached,
                "raw": result.choices,
            },
        ]
        if step + 1 >= self.steps:
            chains = [[s["outputs"][0] for s in item.steps[:-1]] + [out] for out in outputs]
            item.parsed = outputs
            self.finish_item(item, chains, item.cached)
        else:
            self.unsaved_items.append(item)

    def on_result(
        self, item: GenerationItem, step: int, request: LLMRequest, result: CompletionResult
    ) -> bool:
        self.apply_result(item, step, request, result)
        self.write_pending()
        return not self.give_up

    def on_batch(
        self, items: dict[int, GenerationItem], step: int, pairs: list[tuple[LLMRequest, CompletionResult]]
    ) -> bool:
        for request, result in pairs:
            self.apply_result(items[request.key], step, request, result)
        self.write_pending()
        return not self.give_up

    def run_settings_concurrency(self) -> int:
        if not self.run.endpoint:
            return 1
        return self.run.endpoint.max_concurrency // (self.run.shard_count if self.shard else 1) or 1

    def pending_items(self) -> Any:
        items = GenerationItem.objects.filter(run=self.run, status=ItemStatus.PENDING)
        return items.filter(shard=self.shard.number) if self.shard is not None else items

    # the loops
    def execute(self) -> None:
        if self.run.is_offline:
            self.execute_offline()
        else:
            self.execute_llm()

    def execute_llm(self) -> None:
        for step in range(self.steps):
            items = list(self.pending_items().order_by("index"))
            items = [item for item in items if len(item.steps) == step]
            if not items:
                continue
            by_key = {item.pk: item for item in items}
            requests = []
            for item in items:
                messages, schema = self.step_request(item, step)
                requests.append(
                    LLMRequest(
                        key=item.pk,
                        messages=messages,
                        params=request_params(self.config, item.index),
                        json_schema=schema,
                    )
                )
            summary = complete_many_sync(
                self.endpoint_settings(),
                requests,
                on_batch=lambda pairs: self.on_batch(by_key, step, pairs),  # noqa: B023
                should_stop=self.should_stop,
            )
            self.flush(force=True)
            if summary.stopped:
                return

    def step_request(self, item: GenerationItem, step: int) -> tuple[list[dict], dict | None]:
        if step == 0:
            return item.messages, self.context.schema
        values = {**self.context.base_values, "conditions": prompts.format_conditions(item.conditions)}
        outputs = [s["outputs"][0] for s in item.steps]
        return prompts.later_step(
            self.config.kind, step, outputs, values=values, labels=self.context.label_names
        )

    def execute_offline(self) -> None:
        generator = offline_generator(self.context)
        labels = self.context.label_names
        items = self.pending_items().order_by("index")
        batch: list[GenerationItem] = []
        for item in items.iterator(chunk_size=200):
            batch.append(item)
            if len(batch) >= 50:
                if not self.offline_batch(batch, generator, labels):
                    return
                batch = []
        if batch:
            self.offline_batch(batch, generator, labels)

    def offline_batch(
        self, batch: list[GenerationItem], generator: OfflineGenerator, labels: list[str]
    ) -> bool:
        if self.should_stop():
            return False
        with transaction.atomic():
            for item in batch:
                rng = random.Random(self.config.seed * 1_000_003 + item.index)
                label = generator.label_for(rng, item.conditions.get("label", ""), labels)
                outputs = offline_outputs(
                    self.config.kind, self.steps, generator, rng, label, item.random_words
                )
                item.steps = [
                    {"messages": [], "outputs": [out], "cached": False, "raw": [json.dumps(out)]}
                    for out in outputs
                ]
                item.raw_output = json.dumps(outputs[0])
                item.parsed = outputs
                self.finish_item(item, [outputs], cached=False)
            self.write_pending()
            self.flush(force=True)
        return True


def offline_generator(context: GenerationContext) -> OfflineGenerator:
    by_label: dict[str, list[str]] = {name: [] for name in context.label_names}
    for sample in context.pool:
        label = demo_label(sample)
        if label in by_label:
            by_label[label].append(sample.text)
    examples = [ex for label in context.config.codebook.labels.all() for ex in label.examples]
    for label in context.config.codebook.labels.all():
        by_label.setdefault(label.name, []).extend(label.examples)
    return OfflineGenerator(by_label, fallback_texts=[s.text for s in context.pool] + examples)


def offline_outputs(
    kind: str, steps: int, generator: OfflineGenerator, rng: random.Random, label: str, words: list[str]
) -> list[Any]:
    """What the offline generator says at each step (same shapes the LLM path produces)."""
    text = generator.text(rng, label, words)
    if kind == "single":
        return [{"text": text, "label": label}]
    if kind == "input_then_label":
        return [{"text": text}, {"label": label}]
    if kind == "instruction_then_response":
        return [{"instruction": text}, generator.text(rng, label)]
    return [{"text": text}] + [generator.text(rng, label) for _ in range(steps - 1)]


def run_execute(*, run_id: int) -> GenerationRun:
    """The task body: claim the run, send what is pending, finish the run. Safe to call again at any time."""
    run = GenerationRun.objects.select_related("config__codebook", "endpoint").get(pk=run_id)
    if run.is_finished:
        return run
    if run.is_sharded:
        from generation.services.shards import run_coordinate

        return run_coordinate(run)
    execution = RunExecution(run)
    if not execution.claim():
        return run
    try:
        execution.execute()
    except Exception as error:  # never leave a run spinning: record and re-raise for the worker log
        execution.flush(force=True)
        GenerationRun.objects.filter(pk=run.pk, lease=execution.lease).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error=f"The run stopped with an error: {error}",
        )
        raise
    execution.flush(force=True)
    run.refresh_from_db()
    if run.status != JobStatus.RUNNING or run.lease != execution.lease:
        return run  # cancelled, or another execution owns it now
    counters = execution.counters
    run_finish(
        run,
        failure=f"The endpoint could not be reached after retries: {execution.last_transport_error}"
        if execution.give_up
        else "",
        done=counters.done,
        samples_created=counters.samples_created,
        failed=counters.failed,
        garbage=counters.garbage,
    )
    return run


def run_finish(
    run: GenerationRun,
    *,
    failure: str,
    done: int,
    samples_created: int,
    failed: int,
    garbage: int,
    where: str = "",
) -> None:
    """End a run that was sent (whole, or by its shards): failed with `failure` and what was kept, failed when
    items are still pending, else succeeded with its counts."""
    if failure:
        run.mark_finished(
            JobStatus.FAILED, error=f"{failure} {done} items finished and are kept; Resume retries the rest."
        )
    elif GenerationItem.objects.filter(run=run, status=ItemStatus.PENDING).exists():
        run.mark_finished(
            JobStatus.FAILED, error="The run stopped before every item was sent; Resume continues it."
        )
    else:
        run.mark_finished(
            JobStatus.SUCCEEDED,
            message=f"{samples_created} samples from {done} requests{where}"
            + (f"; {failed} failed ({garbage} unusable answers)" if failed else "")
            + ".",
        )


def run_is_stalled(run: GenerationRun) -> bool:
    """Running, but no progress beat for JOB_STALL_SECONDS: its worker probably died (the stall recovery in
    synthstudio.jobs queues it again; Resume does the same at once)."""
    if run.status != JobStatus.RUNNING or run.heartbeat_at is None:
        return False
    return (timezone.now() - run.heartbeat_at).total_seconds() > settings.JOB_STALL_SECONDS


def run_rate_and_eta(run: GenerationRun) -> tuple[float | None, float | None]:
    """Items per second since the run started, and seconds left at that rate (None when unknown)."""
    if not run.started_at or not (run.done + run.failed):
        return None, None
    end = run.finished_at or timezone.now()
    seconds = max(0.001, (end - run.started_at).total_seconds())
    rate = (run.done + run.failed) / seconds
    left = max(0, run.total - run.done - run.failed)
    return rate, (left / rate if rate and not run.is_finished else None)
