"""Condition value pools expanded by the LLM (or, offline, the seed vocabulary): proposals wait for a lead,
and an accepted value goes into a new config version."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from generation import prompts
from generation.conditions import vocabulary_from
from generation.llm.client import complete
from generation.llm.offline import GENERATOR_NAME
from generation.models import ConditionValueProposal, GenerationConfig, ProposalStatus
from generation.services.configs import config_create_version, config_values
from generation.services.planning import generation_context


def proposals_request(
    *, config: GenerationConfig, dimension: str, count: int = 5
) -> list[ConditionValueProposal]:
    """Ask the config's endpoint (or, offline, the seed vocabulary) for new values of a dimension; they wait
    for a lead's review and are not used until accepted."""
    existing = next(
        (list(d.get("values", [])) for d in config.dimensions if d.get("name") == dimension), None
    )
    if existing is None:
        raise ValidationError(f"The config has no dimension {dimension!r}.")
    known = {value.lower() for value in existing} | {
        p.value.lower() for p in config.proposals.filter(dimension=dimension)
    }
    if config.endpoint:
        schema = {
            "type": "object",
            "properties": {"values": {"type": "array", "items": {"type": "string"}}},
            "required": ["values"],
        }
        prompt = (
            f"Task: {config.codebook.task_description}\nWe generate examples that vary by '{dimension}'. "
            f"Existing values: {', '.join(existing)}.\nPropose {count} new, different values. "
            + prompts.format_instructions(schema)
        )
        result = complete(
            config.endpoint, [{"role": "user", "content": prompt}], json_schema=schema, temperature=0.7
        )
        if not result.ok:
            raise ValidationError(f"The endpoint gave no usable values: {result.error}")
        values, source = [str(v).strip() for v in result.parsed[0]["values"]], config.endpoint.model
    else:
        context = generation_context(config)
        values, source = vocabulary_from(s.text for s in context.pool), GENERATOR_NAME
    fresh = [v for v in dict.fromkeys(values) if v and v.lower() not in known][:count]
    return [
        ConditionValueProposal.objects.create(
            config=config, dimension=dimension, value=value[:300], source=source
        )
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
    latest = (
        GenerationConfig.objects.filter(project=config.project, name=config.name).order_by("-version").first()
    )
    values = config_values(latest)
    values["dimensions"] = [
        {**d, "values": [*d.get("values", []), proposal.value]} if d.get("name") == proposal.dimension else d
        for d in latest.dimensions
    ]
    with transaction.atomic():
        new_version = config_create_version(
            project=config.project, user=user, name=config.name, values=values
        )
        ConditionValueProposal.objects.filter(pk=proposal.pk).update(status=ProposalStatus.ACCEPTED)
    return new_version
