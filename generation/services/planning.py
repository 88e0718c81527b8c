"""Planning the items of a run: what a config's prompts are built from (codebook, dimensions, demo pool,
vocabulary), and each item's conditions, demos, random words, first-step messages and request parameters.
Used by the preview and by runs, so a previewed prompt is the prompt a run sends."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from generation import prompts
from generation.conditions import plan_conditions, random_words, vocabulary_from
from generation.demo_selection import pick_demos
from generation.models import GenerationConfig
from synthstudio.models import Sample


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
    dimensions = [
        (d["name"], [str(v) for v in d.get("values", []) if str(v).strip()]) for d in config.dimensions or []
    ]
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
    context = GenerationContext(
        config, labels, dimensions, schema, base_values, verified + seeds, len(verified)
    )
    if config.random_words:
        texts = [s.text for s in context.pool] + [
            ex for label in codebook.labels.all() for ex in label.examples
        ]
        context.vocabulary = vocabulary_from(texts)
    return context


def demo_label(sample: Sample) -> str:
    return sample.final_label or str((sample.provenance or {}).get("label", ""))


# Demo strategies that pick one set for the whole pool (not per item's conditions): computed once per plan.
SHARED_DEMO_STRATEGIES = ("kmeans", "votek")


def plan_items(
    context: GenerationContext, count: int, *, weights: dict | None = None, start_index: int = 0
) -> list[PlannedItem]:
    """The prompts of `count` items: conditions, demos, random words and the first step's messages."""
    config = context.config
    merged = {"label": dict(config.label_balance or {})} if config.label_balance else {}
    for name, values in (weights or {}).items():
        merged[name] = {**merged.get(name, {}), **values}
    plans = plan_conditions(
        context.dimensions, count, mode=config.sampling_mode, seed=config.seed + start_index, weights=merged
    )
    rng = random.Random(config.seed * 7919 + start_index)
    vectors, targets = _demo_vectors(context, plans)
    shared_demos: list[int] | None = None
    items = []
    for offset, conditions in enumerate(plans):
        if config.demo_strategy in SHARED_DEMO_STRATEGIES:
            if shared_demos is None:
                shared_demos = pick_demos(
                    config.demo_strategy,
                    config.demo_count,
                    pool_size=len(context.pool),
                    verified_count=context.verified_count,
                    vectors=vectors,
                    seed=config.seed,
                )
            picked = shared_demos
        else:
            target = targets.get(_conditions_text(conditions)) if targets else None
            picked = pick_demos(
                config.demo_strategy,
                config.demo_count,
                pool_size=len(context.pool),
                verified_count=context.verified_count,
                vectors=vectors,
                target=target,
                rng=rng,
            )
        demos = [
            {
                "sample_id": context.pool[i].id,
                "text": context.pool[i].text,
                "label": demo_label(context.pool[i]),
            }
            for i in picked
        ]
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
    if (
        strategy not in {"similar", *SHARED_DEMO_STRATEGIES}
        or not context.pool
        or not context.config.demo_count
    ):
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
