"""Generation configs: checking a template and its dimensions, saving a new version, the latest version of
each named config, and the preview of a config (rendered prompts, token and cost estimate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max

from generation import prompts
from generation.llm.client import EndpointSettings, estimate_tokens
from generation.llm.schema import check_schema
from generation.models import GenerationConfig
from generation.services.planning import PlannedItem, generation_context, plan_items
from synthstudio.models import Project

CONFIG_FIELDS = (
    "endpoint",
    "kind",
    "dialogue_turns",
    "role_preamble",
    "template",
    "json_schema",
    "dimensions",
    "condition_on_label",
    "label_balance",
    "sampling_mode",
    "random_words",
    "demo_count",
    "demo_strategy",
    "temperature",
    "top_p",
    "max_tokens",
    "n",
    "seed",
    "target_count",
    "rounds",
    "rounds_target_corrected_share",
)


def config_problems(*, template: str, dimensions: list[dict], json_schema: dict) -> list[str]:
    """What is wrong with a template, its dimensions and a JSON schema, as sentences (empty when fine)."""
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


def config_create_version(
    *, project: Project, user: Any, name: str, values: dict[str, Any]
) -> GenerationConfig:
    """Save a new version of the named config (version 1 when new). Raises ValidationError on a bad
    template (naming the unknown placeholder), a bad schema or a missing codebook."""
    codebook = project.codebook
    if codebook is None:
        raise ValidationError("Write the project's codebook first: generation prompts are built from it.")
    problems = config_problems(
        template=values.get("template", ""),
        dimensions=values.get("dimensions") or [],
        json_schema=values.get("json_schema") or {},
    )
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        latest = (
            GenerationConfig.objects.select_for_update()
            .filter(project=project, name=name)
            .aggregate(v=Max("version"))["v"]
            or 0
        )
        return GenerationConfig.objects.create(
            project=project,
            name=name,
            version=latest + 1,
            codebook=codebook,
            created_by=user,
            **{key: values[key] for key in CONFIG_FIELDS if key in values},
        )


def configs_latest(project: Project) -> list[GenerationConfig]:
    """The newest version of each named config, with its run count (one query each, not per row)."""
    latest_ids = (
        GenerationConfig.objects.filter(project=project)
        .values("name")
        .annotate(latest=Max("id"))
        .values_list("latest", flat=True)
    )
    return list(
        GenerationConfig.objects.filter(id__in=list(latest_ids))
        .select_related("endpoint", "codebook")
        .annotate(run_count=Count("runs"))
        .order_by("name")
    )


def config_values(config: GenerationConfig) -> dict[str, Any]:
    return {key: getattr(config, key) for key in CONFIG_FIELDS}


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
    return Preview(
        shown, config.target_count * steps, prompt_tokens, completion_tokens, cost, config.is_offline
    )
