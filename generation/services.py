"""Generation workflows: config versions, planning prompts (preview and runs), executing runs (resumable,
cancellable), dataset-level rounds, and LLM-proposed condition values."""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from generation import prompts
from generation.conditions import plan_conditions, random_words, reweight_toward_weakness, vocabulary_from
from generation.demo_selection import pick_demos
from generation.llm.client import (
    CompletionResult,
    EndpointSettings,
    ErrorKind,
    LLMRequest,
    complete,
    complete_many_sync,
    estimate_tokens,
)
from generation.llm.offline import GENERATOR_NAME, OfflineGenerator
from generation.models import (
    ConditionValueProposal,
    GenerationConfig,
    GenerationItem,
    GenerationRun,
    ItemStatus,
    LLMEndpoint,
    ProposalStatus,
)
from synthstudio.jobs import enqueue
from synthstudio.models import FinalSource, HumanAnnotation, JobStatus, Project, Sample, text_hash

ITEM_RESULT_FIELDS = [
    "steps", "status", "parse_status", "error", "raw_output", "parsed", "label", "cached", "prompt_tokens",
    "completion_tokens", "cost", "finished_at",
]
TRANSPORT_ERRORS = {ErrorKind.HTTP_ERROR, ErrorKind.TIMEOUT, ErrorKind.CONNECTION}
CONFIG_FIELDS = (
    "endpoint", "kind", "dialogue_turns", "role_preamble", "template", "json_schema", "dimensions",
    "condition_on_label", "label_balance", "sampling_mode", "random_words", "demo_count", "demo_strategy",
    "temperature", "top_p", "max_tokens", "n", "seed", "target_count", "rounds",
)


# -- configs -----------------------------------------------------------------------------------------------

def config_problems(*, template: str, dimensions: list[dict], json_schema: dict) -> list[str]:
    from generation.llm.schema import check_schema

    names = [d.get("name", "") for d in dimensions]
    problems = prompts.template_problems(template, names)
    for name in names:
        if name in prompts.BUILTIN_PLACEHOLDERS and name != "label":
            problems.append(f"A dimension cannot be called {name!r}: that placeholder is built in.")
    if len(set(names)) != len(names):
        problems.append("Two dimensions have the same name.")
    if json_schema:
        problems += check_schema(json_schema)
    return problems


def config_create_version(*, project: Project, user: Any, name: str, values: dict[str, Any]) -> GenerationConfig:
    """Save a new version of the named config (version 1 when new). Raises ValidationError on a bad
    template (naming the unknown placeholder), a bad schema or a missing codebook."""
    codebook = project.codebook
    if codebook is None:
        raise ValidationError("Write the project's codebook first: generation prompts are built from it.")
    problems = config_problems(
        template=values.get("template", ""), dimensions=values.get("dimensions") or [], json_schema=values.get("json_schema") or {}
    )
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        latest = (
            GenerationConfig.objects.select_for_update().filter(project=project, name=name).aggregate(v=Max("version"))["v"] or 0
        )
        return GenerationConfig.objects.create(
            project=project, name=name, version=latest + 1, codebook=codebook, created_by=user,
            **{key: values[key] for key in CONFIG_FIELDS if key in values},
        )


def configs_latest(project: Project) -> list[GenerationConfig]:
    """The newest version of each named config, with its run count (one query each, not per row)."""
    latest_ids = (
        GenerationConfig.objects.filter(project=project).values("name").annotate(latest=Max("id")).values_list("latest", flat=True)
    )
    return list(
        GenerationConfig.objects.filter(id__in=list(latest_ids))
        .select_related("endpoint", "codebook")
        .annotate(run_count=Count("runs"))
        .order_by("name")
    )


def config_values(config: GenerationConfig) -> dict[str, Any]:
    return {key: getattr(config, key) for key in CONFIG_FIELDS}


# -- planning ----------------------------------------------------------------------------------------------

@dataclass
class PlannedItem:
    index: int
    conditions: dict[str, str]
    demos: list[dict]
    random_words: list[str]
    messages: list[dict]


@dataclass
class GenerationContext:
    config: GenerationConfig
    labels: list[tuple[str, str]]
    dimensions: list[tuple[str, list[str]]]
    schema: dict
    base_values: dict[str, str]
    pool: list[Sample] = field(default_factory=list)
    verified_count: int = 0
    vocabulary: list[str] = field(default_factory=list)

    @property
    def label_names(self) -> list[str]:
        return [name for name, _ in self.labels]


def generation_context(config: GenerationConfig) -> GenerationContext:
    codebook = config.codebook
    labels = [(label.name, label.description) for label in codebook.labels.all()]
    dimensions = [(d["name"], [str(v) for v in d.get("values", []) if str(v).strip()]) for d in config.dimensions or []]
    if config.condition_on_label and labels and "label" not in {name for name, _ in dimensions}:
        dimensions.append(("label", [name for name, _ in labels]))
    schema = config.json_schema or prompts.default_schema(config.kind, [name for name, _ in labels])
    base_values = {
        "role": config.role_preamble,
        "task": codebook.task_description,
        "labels": prompts.format_labels(labels),
        "guidelines": codebook.guidelines,
        "format": prompts.format_instructions(schema),
    }
    project_samples = Sample.objects.filter(project=config.project).exclude(origin="generated")
    verified = list(Sample.objects.filter(project=config.project).human_verified().order_by("id")[:500])
    verified_ids = {s.id for s in verified}
    seeds = [s for s in project_samples.filter(is_seed=True).order_by("id")[:500] if s.id not in verified_ids]
    context = GenerationContext(config, labels, dimensions, schema, base_values, verified + seeds, len(verified))
    if config.random_words:
        texts = [s.text for s in context.pool] + [ex for label in codebook.labels.all() for ex in label.examples]
        context.vocabulary = vocabulary_from(texts)
    return context


def demo_label(sample: Sample) -> str:
    return sample.final_label or str((sample.provenance or {}).get("label", ""))


# Demo strategies that pick one set for the whole pool (not per item's conditions): computed once per plan.
SHARED_DEMO_STRATEGIES = ("kmeans", "votek")


def plan_items(context: GenerationContext, count: int, *, weights: dict | None = None, start_index: int = 0) -> list[PlannedItem]:
    """The prompts of `count` items: conditions, demos, random words and the first step's messages."""
    config = context.config
    merged = {"label": dict(config.label_balance or {})} if config.label_balance else {}
    for name, values in (weights or {}).items():
        merged[name] = {**merged.get(name, {}), **values}
    plans = plan_conditions(context.dimensions, count, mode=config.sampling_mode, seed=config.seed + start_index, weights=merged)
    rng = random.Random(config.seed * 7919 + start_index)
    vectors, targets = _demo_vectors(context, plans)
    shared_demos: list[int] | None = None
    items = []
    for offset, conditions in enumerate(plans):
        if config.demo_strategy in SHARED_DEMO_STRATEGIES:
            if shared_demos is None:
                shared_demos = pick_demos(config.demo_strategy, config.demo_count, pool_size=len(context.pool),
                                          verified_count=context.verified_count, vectors=vectors, seed=config.seed)
            picked = shared_demos
        else:
            target = targets.get(_conditions_text(conditions)) if targets else None
            picked = pick_demos(config.demo_strategy, config.demo_count, pool_size=len(context.pool),
                                verified_count=context.verified_count, vectors=vectors, target=target, rng=rng)
        demos = [{"sample_id": context.pool[i].id, "text": context.pool[i].text, "label": demo_label(context.pool[i])} for i in picked]
        words = random_words(context.vocabulary, config.random_words, rng)
        values = {
            **context.base_values,
            **conditions,
            "conditions": prompts.format_conditions(conditions),
            "label": conditions.get("label", ""),
            "demos": prompts.format_demos(demos),
            "random_words": prompts.format_random_words(words),
        }
        for name, _ in context.dimensions:
            values.setdefault(name, "")
        messages = prompts.first_messages(config.template, values, "")
        items.append(PlannedItem(start_index + offset, conditions, demos, words, messages))
    return items


def _conditions_text(conditions: dict[str, str]) -> str:
    return "; ".join(f"{name}: {value}" for name, value in conditions.items())


def _demo_vectors(context: GenerationContext, plans: list[dict[str, str]]):
    """Embeddings of the pool (and of each distinct condition set, for 'similar'); None when not needed."""
    strategy = context.config.demo_strategy
    if strategy not in {"similar", *SHARED_DEMO_STRATEGIES} or not context.pool or not context.config.demo_count:
        return None, {}
    from synthstudio.embeddings import embed_texts

    vectors = embed_texts([s.text for s in context.pool])
    targets: dict[str, Any] = {}
    if strategy == "similar":
        texts = list(dict.fromkeys(_conditions_text(p) for p in plans))
        targets = dict(zip(texts, embed_texts(texts), strict=True)) if texts else {}
    return vectors, targets


def request_params(config: GenerationConfig, index: int) -> dict:
    """Chat parameters of item `index`. Each item gets its own seed (config seed + index), so identical
    prompts are still distinct, reproducible calls — and a re-run hits the cache instead of paying again."""
    return {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens,
        "n": config.n if config.kind == "single" else 1,
        "seed": config.seed + index,
    }


@dataclass
class Preview:
    items: list[PlannedItem]
    total_requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    offline: bool


def config_preview(*, config: GenerationConfig, count: int = 5) -> Preview:
    """A few fully rendered prompts and an estimate (tokens, cost) for the whole run of target_count items."""
    context = generation_context(config)
    shown = plan_items(context, min(count, max(1, config.target_count)))
    steps = prompts.step_count(config.kind, config.dialogue_turns)
    per_item_prompt = sum(estimate_tokens(i.messages, {"max_tokens": 0}) for i in shown) / max(1, len(shown))
    completion = config.max_tokens * (config.n if config.kind == "single" else 1)
    # Later steps carry the earlier outputs: estimate them as the first prompt plus what came before.
    prompt_tokens = int(config.target_count * sum(per_item_prompt + completion * s for s in range(steps)))
    completion_tokens = int(config.target_count * completion * steps)
    settings = EndpointSettings.from_endpoint(config.endpoint) if config.endpoint else None
    cost = settings.cost(prompt_tokens, completion_tokens) if settings else 0.0
    return Preview(shown, config.target_count * steps, prompt_tokens, completion_tokens, cost, config.is_offline)


# -- runs --------------------------------------------------------------------------------------------------

def run_start(
    *, config: GenerationConfig, user: Any, count: int | None = None, weights: dict | None = None,
    previous: GenerationRun | None = None, enqueue_task: bool = True,
) -> GenerationRun:
    """Plan every item (prompts rendered now, so the run is reproducible) and queue the run."""
    from generation.tasks import generation_run_task

    total = count or config.target_count
    context = generation_context(config)
    planned = plan_items(context, total, weights=weights)
    endpoint = config.endpoint
    with transaction.atomic():
        run = GenerationRun.objects.create(
            project=config.project, created_by=user, config=config, endpoint=endpoint,
            model_name=endpoint.model if endpoint else GENERATOR_NAME, total=len(planned),
            round_number=(previous.round_number + 1) if previous else 1, previous_round=previous,
            condition_weights=weights or {}, message="Queued.",
        )
        GenerationItem.objects.bulk_create(
            [
                GenerationItem(run=run, index=item.index, conditions=item.conditions, demos=item.demos,
                               random_words=item.random_words, messages=item.messages)
                for item in planned
            ],
            batch_size=500,
        )
        if enqueue_task:
            enqueue(generation_run_task, run.pk)
    return run


def run_cancel(*, run: GenerationRun) -> GenerationRun:
    """Stop a queued or running run; finished items and their samples stay."""
    GenerationRun.objects.filter(pk=run.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now(), message="Cancelled. Finished items are kept; Resume continues.",
    )
    run.refresh_from_db()
    return run


def run_resume(*, run: GenerationRun) -> GenerationRun:
    """Queue the run again: pending items and items that failed to reach the endpoint are sent; finished
    items are skipped and their calls never re-sent (the cache holds every finished answer)."""
    from generation.tasks import generation_run_task

    with transaction.atomic():
        GenerationItem.objects.filter(run=run, status=ItemStatus.FAILED, parse_status__in=TRANSPORT_ERRORS).update(
            status=ItemStatus.PENDING, parse_status="", error=""
        )
        GenerationRun.objects.filter(pk=run.pk).update(
            status=JobStatus.QUEUED, finished_at=None, error="", lease="", message="Queued to resume."
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
    def from_items(cls, run: GenerationRun) -> RunCounters:
        sums = GenerationItem.objects.filter(run=run).aggregate(
            done=Count("id", filter=Q(status=ItemStatus.DONE)),
            failed=Count("id", filter=Q(status=ItemStatus.FAILED)),
            cached=Count("id", filter=Q(cached=True, status=ItemStatus.DONE)),
            garbage=Count("id", filter=Q(status=ItemStatus.FAILED) & ~Q(parse_status__in=TRANSPORT_ERRORS)),
            prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"), cost=Sum("cost"),
        )
        samples = Sample.objects.filter(generation_items__run=run).count()
        return cls(**{k: v or 0 for k, v in sums.items()}, samples_created=samples)

    def save_to(self, run: GenerationRun) -> None:
        GenerationRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now(), **self.__dict__)


def update_item_results(items: list[GenerationItem]) -> None:
    """UPDATE … WHERE id = %s with executemany: QuerySet.bulk_update builds a CASE expression per field
    and row, which cost more CPU than everything else in a run at 100+ results a second."""
    fields = [GenerationItem._meta.get_field(name) for name in ITEM_RESULT_FIELDS]
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(GenerationItem._meta.db_table)} SET "
        + ", ".join(f"{quote(field.column)} = %s" for field in fields)
        + f" WHERE {quote('id')} = %s"
    )
    rows = [[field.get_db_prep_save(getattr(item, field.attname), connection) for field in fields] + [item.pk] for item in items]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


class RunExecution:
    """One task execution of a run. Owns the run through `lease`; stops when cancelled or when another
    execution takes the lease over."""

    PROGRESS_SECONDS = 0.5

    def __init__(self, run: GenerationRun) -> None:
        self.run = run
        self.config = run.config
        self.lease = uuid.uuid4().hex
        self.counters = RunCounters.from_items(run)
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
        claimed = GenerationRun.objects.filter(pk=self.run.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
            lease=self.lease, status=JobStatus.RUNNING, heartbeat_at=now, message="Running."
        )
        if claimed:
            GenerationRun.objects.filter(pk=self.run.pk, started_at__isnull=True).update(started_at=now)
        return bool(claimed)

    def should_stop(self) -> bool:
        if self.give_up:
            return True
        status, lease = GenerationRun.objects.filter(pk=self.run.pk).values_list("status", "lease").get()
        return status != JobStatus.RUNNING or lease != self.lease

    def flush(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last_flush > self.PROGRESS_SECONDS:
            self.last_flush = time.monotonic()
            GenerationRun.objects.filter(pk=self.run.pk, lease=self.lease).update(
                heartbeat_at=timezone.now(), **self.counters.__dict__
            )

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
            sample = Sample(project_id=self.run.project_id, text=made["text"], fields=made["fields"], origin="generated",
                            text_hash=text_hash(made["text"]))
            sample.provenance = self.provenance(item, made["label"], cached)
            samples.append(sample)
            item.label = item.label or made["label"]
        if not samples:
            self.fail_item(item, ErrorKind.EMPTY_OUTPUT, "Every answer was empty after parsing.", garbage=True)
            return
        item.status, item.parse_status, item.finished_at = ItemStatus.DONE, "ok", timezone.now()
        self.unsaved_items.append(item)
        self.unsaved_samples.append((item, samples))
        self.counters.done += 1
        self.counters.cached += cached
        self.counters.samples_created += len(samples)

    def fail_item(self, item: GenerationItem, kind: str, error: str, *, garbage: bool) -> None:
        item.status, item.parse_status, item.error, item.finished_at = ItemStatus.FAILED, kind, error, timezone.now()
        self.unsaved_items.append(item)
        self.counters.failed += 1
        self.counters.garbage += garbage

    def write_pending(self) -> None:
        """One bulk write per batch of results (samples, their links, the items), then progress."""
        samples = [sample for _, made in self.unsaved_samples for sample in made]
        if samples:
            Sample.objects.bulk_create(samples)
            links = GenerationItem.samples.through
            links.objects.bulk_create(
                [links(generationitem_id=item.pk, sample_id=sample.pk) for item, made in self.unsaved_samples for sample in made]
            )
        if self.unsaved_items:
            update_item_results(self.unsaved_items)
        self.unsaved_items, self.unsaved_samples = [], []
        self.flush()

    def apply_result(self, item: GenerationItem, step: int, request: LLMRequest, result: CompletionResult) -> None:
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
        outputs = [parsed if schema else content for parsed, content, err in
                   zip(result.parsed, result.choices, result.choice_errors, strict=True) if not err]
        # the first step's messages are item.messages; later steps keep their own
        item.steps = [*item.steps, {"messages": request.messages if step else [], "outputs": outputs,
                                    "cached": result.cached, "raw": result.choices}]
        if step + 1 >= self.steps:
            chains = [[s["outputs"][0] for s in item.steps[:-1]] + [out] for out in outputs]
            item.parsed = outputs
            self.finish_item(item, chains, item.cached)
        else:
            self.unsaved_items.append(item)

    def on_result(self, item: GenerationItem, step: int, request: LLMRequest, result: CompletionResult) -> bool:
        self.apply_result(item, step, request, result)
        self.write_pending()
        return not self.give_up

    def on_batch(self, items: dict[int, GenerationItem], step: int, pairs: list[tuple[LLMRequest, CompletionResult]]) -> bool:
        for request, result in pairs:
            self.apply_result(items[request.key], step, request, result)
        self.write_pending()
        return not self.give_up

    def run_settings_concurrency(self) -> int:
        return self.run.endpoint.max_concurrency if self.run.endpoint else 1

    # the loops
    def execute(self) -> None:
        if self.run.is_offline:
            self.execute_offline()
        else:
            self.execute_llm()

    def execute_llm(self) -> None:
        for step in range(self.steps):
            items = list(GenerationItem.objects.filter(run=self.run, status=ItemStatus.PENDING).order_by("index"))
            items = [item for item in items if len(item.steps) == step]
            if not items:
                continue
            by_key = {item.pk: item for item in items}
            requests = []
            for item in items:
                messages, schema = self.step_request(item, step)
                requests.append(LLMRequest(key=item.pk, messages=messages, params=request_params(self.config, item.index), json_schema=schema))
            summary = complete_many_sync(
                self.run.endpoint, requests,
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
        return prompts.later_step(self.config.kind, step, outputs, values=values, labels=self.context.label_names)

    def execute_offline(self) -> None:
        generator = offline_generator(self.context)
        labels = self.context.label_names
        items = GenerationItem.objects.filter(run=self.run, status=ItemStatus.PENDING).order_by("index")
        batch: list[GenerationItem] = []
        for item in items.iterator(chunk_size=200):
            batch.append(item)
            if len(batch) >= 50:
                if not self.offline_batch(batch, generator, labels):
                    return
                batch = []
        if batch:
            self.offline_batch(batch, generator, labels)

    def offline_batch(self, batch: list[GenerationItem], generator: OfflineGenerator, labels: list[str]) -> bool:
        if self.should_stop():
            return False
        with transaction.atomic():
            for item in batch:
                rng = random.Random(self.config.seed * 1_000_003 + item.index)
                label = generator.label_for(rng, item.conditions.get("label", ""), labels)
                outputs = offline_outputs(self.config.kind, self.steps, generator, rng, label, item.random_words)
                item.steps = [{"messages": [], "outputs": [out], "cached": False, "raw": [json.dumps(out)]} for out in outputs]
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


def offline_outputs(kind: str, steps: int, generator: OfflineGenerator, rng: random.Random, label: str,
                    words: list[str]) -> list[Any]:
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
    execution = RunExecution(run)
    if not execution.claim():
        return run
    try:
        execution.execute()
    except Exception as error:  # never leave a run spinning: record and re-raise for the worker log
        execution.flush(force=True)
        GenerationRun.objects.filter(pk=run.pk, lease=execution.lease).update(
            status=JobStatus.FAILED, finished_at=timezone.now(), error=f"The run stopped with an error: {error}"
        )
        raise
    execution.flush(force=True)
    run.refresh_from_db()
    if run.status != JobStatus.RUNNING or run.lease != execution.lease:
        return run  # cancelled, or another execution owns it now
    counters = execution.counters
    if execution.give_up:
        run.mark_finished(
            JobStatus.FAILED,
            error=(f"The endpoint could not be reached after retries: {execution.last_transport_error} "
                   f"{counters.done} items finished and are kept; Resume retries the rest."),
        )
    elif GenerationItem.objects.filter(run=run, status=ItemStatus.PENDING).exists():
        run.mark_finished(JobStatus.FAILED, error="The run stopped before every item was sent; Resume continues it.")
    else:
        run.mark_finished(
            JobStatus.SUCCEEDED,
            message=f"{counters.samples_created} samples from {counters.done} requests"
            + (f"; {counters.failed} failed ({counters.garbage} unusable answers)" if counters.failed else "")
            + ".",
        )
    return run


STALL_SECONDS = 60


def run_is_stalled(run: GenerationRun, *, seconds: float = STALL_SECONDS) -> bool:
    """Running, but no progress beat for a while: its worker probably died (Resume restarts it)."""
    if run.status != JobStatus.RUNNING or run.heartbeat_at is None:
        return False
    return (timezone.now() - run.heartbeat_at).total_seconds() > seconds


def runs_resume_stalled(*, seconds: float = STALL_SECONDS) -> list[int]:
    """Queue again every running run whose heartbeat stopped (called when a worker starts): a broker that
    lost the message of a killed worker (the filesystem broker does) would otherwise leave it hanging."""
    stale = timezone.now() - timedelta(seconds=seconds)
    resumed = []
    for run in GenerationRun.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale):
        run_resume(run=run)
        resumed.append(run.pk)
    return resumed


def run_rate_and_eta(run: GenerationRun) -> tuple[float | None, float | None]:
    """Items per second since the run started, and seconds left at that rate (None when unknown)."""
    if not run.started_at or not (run.done + run.failed):
        return None, None
    end = run.finished_at or timezone.now()
    seconds = max(0.001, (end - run.started_at).total_seconds())
    rate = (run.done + run.failed) / seconds
    left = max(0, run.total - run.done - run.failed)
    return rate, (left / rate if rate and not run.is_finished else None)


# -- outputs viewer ------------------------------------------------------------------------------------------

def condition_names(*, project: Project) -> set[str]:
    """The condition names the project's generation configs (every version) put on their items: the
    dimensions, plus 'label' where a config conditions on the label (see generation_context)."""
    names: set[str] = set()
    for dimensions, on_label in GenerationConfig.objects.filter(project=project).values_list(
        "dimensions", "condition_on_label"
    ):
        names.update(str(d["name"]) for d in dimensions or [] if isinstance(d, dict) and d.get("name"))
        if on_label:
            names.add("label")
    return names


def items_with_condition(items: QuerySet[GenerationItem], *, name: str, value: str) -> QuerySet[GenerationItem]:
    """Items whose condition `name` equals `value`. The key is one explicit JSON key transform, so a name
    can never be read as a lookup (`conditions__contains`, `…__regex`) the way a `conditions__{name}`
    keyword would."""
    return items.alias(condition_value=KeyTransform(name, "conditions")).filter(condition_value=value)


# -- dataset-level rounds ------------------------------------------------------------------------------------

def condition_stats(config: GenerationConfig) -> dict[str, dict[str, dict[str, int]]]:
    """Per dimension and value, over the samples generated by this config's name (all versions):
    generated, reviewed by humans, corrected by humans (the human disagreed with the LLM, or the final
    label differs from the label the sample was generated for)."""
    samples = list(
        Sample.objects.filter(project=config.project, origin="generated", generation_items__run__config__name=config.name)
        .values("id", "provenance", "final_label", "final_source")
        .distinct()
    )
    reviews: dict[int, list[bool | None]] = {}
    for sample_id, agreed in HumanAnnotation.objects.filter(sample_id__in=[s["id"] for s in samples]).values_list(
        "sample_id", "agreed_with_llm"
    ):
        reviews.setdefault(sample_id, []).append(agreed)
    stats: dict[str, dict[str, dict[str, int]]] = {}
    for sample in samples:
        provenance = sample["provenance"] or {}
        conditions = dict(provenance.get("conditions") or {})
        generated_label = provenance.get("label") or conditions.get("label", "")
        human_final = sample["final_source"] in {FinalSource.HUMAN, FinalSource.ADJUDICATED}
        reviewed = sample["id"] in reviews or human_final
        corrected = any(agreed is False for agreed in reviews.get(sample["id"], [])) or (
            human_final and bool(generated_label) and sample["final_label"] != generated_label
        )
        for name, value in conditions.items():
            entry = stats.setdefault(name, {}).setdefault(str(value), {"generated": 0, "reviewed": 0, "corrected": 0})
            entry["generated"] += 1
            entry["reviewed"] += reviewed
            entry["corrected"] += corrected
    return stats


def run_next_round(*, run: GenerationRun, user: Any, strength: float = 1.0, count: int | None = None) -> GenerationRun:
    """Start the next round of the run's config with condition weights moved toward the weakest values."""
    context = generation_context(run.config)
    weights = reweight_toward_weakness(context.dimensions, run.condition_weights or {}, condition_stats(run.config), strength=strength)
    return run_start(config=run.config, user=user, count=count, weights=weights, previous=run)


# -- condition value pools expanded by the LLM ----------------------------------------------------------------

def proposals_request(*, config: GenerationConfig, dimension: str, count: int = 5) -> list[ConditionValueProposal]:
    """Ask the config's endpoint (or, offline, the seed vocabulary) for new values of a dimension; they wait
    for a lead's review and are not used until accepted."""
    existing = next((list(d.get("values", [])) for d in config.dimensions if d.get("name") == dimension), None)
    if existing is None:
        raise ValidationError(f"The config has no dimension {dimension!r}.")
    known = {value.lower() for value in existing} | {
        p.value.lower() for p in config.proposals.filter(dimension=dimension)
    }
    if config.endpoint:
        schema = {"type": "object", "properties": {"values": {"type": "array", "items": {"type": "string"}}}, "required": ["values"]}
        prompt = (
            f"Task: {config.codebook.task_description}\nWe generate examples that vary by '{dimension}'. "
            f"Existing values: {', '.join(existing)}.\nPropose {count} new, different values. "
            + prompts.format_instructions(schema)
        )
        result = complete(config.endpoint, [{"role": "user", "content": prompt}], json_schema=schema, temperature=0.7)
        if not result.ok:
            raise ValidationError(f"The endpoint gave no usable values: {result.error}")
        values, source = [str(v).strip() for v in result.parsed[0]["values"]], config.endpoint.model
    else:
        context = generation_context(config)
        values, source = vocabulary_from(s.text for s in context.pool), GENERATOR_NAME
    fresh = [v for v in dict.fromkeys(values) if v and v.lower() not in known][:count]
    return [
        ConditionValueProposal.objects.create(config=config, dimension=dimension, value=value[:300], source=source)
        for value in fresh
    ]


def proposal_decide(*, proposal: ConditionValueProposal, accept: bool, user: Any) -> GenerationConfig | None:
    """Reject, or accept into a new config version whose dimension pool includes the value."""
    if proposal.status != ProposalStatus.PENDING:
        return None
    if not accept:
        proposal.status = ProposalStatus.REJECTED
        proposal.save(update_fields=["status"])
        return None
    config = proposal.config
    latest = GenerationConfig.objects.filter(project=config.project, name=config.name).order_by("-version").first()
    values = config_values(latest)
    values["dimensions"] = [
        {**d, "values": [*d.get("values", []), proposal.value]} if d.get("name") == proposal.dimension else d
        for d in latest.dimensions
    ]
    with transaction.atomic():
        new_version = config_create_version(project=config.project, user=user, name=config.name, values=values)
        ConditionValueProposal.objects.filter(pk=proposal.pk).update(status=ProposalStatus.ACCEPTED)
    return new_version


ENVIRONMENT_ENDPOINT_NAME = "environment (LLM_BASE_URL)"


def endpoint_sync_from_environment() -> LLMEndpoint | None:
    """The endpoint named by LLM_BASE_URL/LLM_MODEL (key from LLM_API_KEY), as a global endpoint every
    project can choose; kept in step with the environment. None when LLM_BASE_URL is unset."""
    from django.conf import settings

    if not settings.LLM_BASE_URL:
        return None
    endpoint, _ = LLMEndpoint.objects.update_or_create(
        project=None, name=ENVIRONMENT_ENDPOINT_NAME,
        defaults={
            "base_url": settings.LLM_BASE_URL, "model": settings.LLM_MODEL or "default", "api_key_env": "LLM_API_KEY",
            "from_environment": True,  # the operator's: the only endpoint that may use LLM_API_KEY
        },
    )
    return endpoint


def endpoint_choices(project: Project):
    return LLMEndpoint.objects.usable_in(project)
