"""Pairs from the project's own generated outputs: two generation runs (or two config versions) are compared
on samples generated for the same condition values (provenance "conditions").

Within one combination of condition values the samples of each side are taken in the order they were
generated and paired first with first, second with second; the surplus of the longer side stays unpaired.
A pair is identified by its two sample ids (whatever the side), so comparing the same runs again, or the
other way round, makes no duplicates.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction

from evaluation.models import PairwiseItem
from generation.models import GenerationConfig, GenerationKind, GenerationRun
from synthstudio.models import JobStatus, Project, Sample

FINISHED = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]


class PairingError(ValueError):
    """Bad input for pairing; the message is shown to the lead as is."""


@dataclass(frozen=True)
class PairSource:
    """One side of a comparison: a run ("run:<id>") or a config version ("config:<id>", all its finished runs)."""

    key: str
    name: str
    run_ids: tuple[int, ...]


def generation_sources(*, project: Project) -> list[PairSource]:
    """What a lead can compare: every finished run and every config version with finished runs, newest first."""
    runs = list(
        GenerationRun.objects.filter(project=project, status__in=FINISHED)
        .select_related("config")
        .order_by("-id")
    )
    by_config: dict[int, list[GenerationRun]] = defaultdict(list)
    for run in runs:
        by_config[run.config_id].append(run)
    sources = [PairSource(f"run:{run.id}", run_name(run), (run.id,)) for run in runs]
    configs = GenerationConfig.objects.filter(id__in=list(by_config)).order_by("name", "-version")
    sources += [
        PairSource(f"config:{config.id}", config_name(config), tuple(r.id for r in by_config[config.id]))
        for config in configs
    ]
    return sources


def run_name(run: GenerationRun) -> str:
    return f"run #{run.id} ({run.config.name} v{run.config.version})"


def config_name(config: GenerationConfig) -> str:
    return f"config {config.name} v{config.version}"


def source_for(*, project: Project, key: str) -> PairSource:
    """The run or config a form value names; PairingError when it is not a finished one of this project."""
    found = {source.key: source for source in generation_sources(project=project)}
    if key not in found:
        raise PairingError("Choose two finished generation runs or configs of this project.")
    return found[key]


def conditions_key(conditions: object) -> str:
    return json.dumps(conditions if isinstance(conditions, dict) else {}, sort_keys=True, default=str)


def conditions_description(conditions: object) -> str:
    """The prompt shown to annotators: the condition values both responses were generated for."""
    if not isinstance(conditions, dict) or not conditions:
        return "Generated without condition values."
    return (
        "Generated for " + "; ".join(f"{name} = {value}" for name, value in sorted(conditions.items())) + "."
    )


def response_text(sample: Sample) -> str:
    """What the annotator compares: the sample text, with the response for instruction/response samples."""
    fields = sample.fields or {}
    if (sample.provenance or {}).get("kind") == GenerationKind.INSTRUCTION_THEN_RESPONSE and fields.get(
        "response"
    ):
        return f"Instruction: {sample.text}\n\nResponse: {fields['response']}"
    return sample.text


def samples_by_conditions(source: PairSource) -> dict[str, list[Sample]]:
    """The source's generated samples grouped by condition values, each group in generation order."""
    groups: dict[str, list[Sample]] = defaultdict(list)
    samples = (
        Sample.objects.filter(origin="generated", generation_items__run_id__in=source.run_ids)
        .order_by("generation_items__run_id", "generation_items__index", "id")
        .distinct()
    )
    for sample in samples:
        groups[conditions_key((sample.provenance or {}).get("conditions"))].append(sample)
    return groups


def pair_key(sample_a: Sample, sample_b: Sample) -> str:
    low, high = sorted((sample_a.id, sample_b.id))
    return f"samples:{low}-{high}"


def pairwise_from_generation(*, project: Project, key_a: str, key_b: str) -> dict:
    """Create the PairwiseItems comparing two runs or configs, all or nothing. Returns the counts the lead
    sees: pairs made, pairs that already existed, condition combinations with no partner on the other side,
    samples left unpaired. Raises PairingError (nothing written) on bad input."""
    if key_a == key_b:
        raise PairingError("Choose two different runs or configs: comparing one with itself makes no pairs.")
    source_a, source_b = source_for(project=project, key=key_a), source_for(project=project, key=key_b)
    if set(source_a.run_ids) & set(source_b.run_ids):
        raise PairingError(
            f"{source_a.name} and {source_b.name} share generation runs: choose two that do not overlap."
        )
    groups_a, groups_b = samples_by_conditions(source_a), samples_by_conditions(source_b)
    shared = [key for key in groups_a if key in groups_b]
    if not shared:
        raise PairingError(
            f"{source_a.name} and {source_b.name} have no condition values in common: nothing to pair."
        )
    candidates = [(a, b) for key in shared for a, b in zip(groups_a[key], groups_b[key], strict=False)]
    batch = f"generation: {source_a.name} vs {source_b.name}"
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()  # one pairing at a time per project
        existing = set(
            PairwiseItem.objects.filter(
                project=project, external_id__in=[pair_key(a, b) for a, b in candidates]
            ).values_list("external_id", flat=True)
        )
        new = [(a, b) for a, b in candidates if pair_key(a, b) not in existing]
        PairwiseItem.objects.bulk_create(
            PairwiseItem(project=project, prompt=conditions_description(a.provenance.get("conditions")),
                         response_a=response_text(a), response_b=response_text(b), source_a=source_a.name,
                         source_b=source_b.name, external_id=pair_key(a, b), batch=batch)
            for a, b in new
        )  # fmt: skip
    paired = 2 * len(candidates)
    total = sum(map(len, groups_a.values())) + sum(map(len, groups_b.values()))
    return {
        "pairs": len(new),
        "existing": len(candidates) - len(new),
        "unmatched_conditions": len(set(groups_a) ^ set(groups_b)),
        "unpaired_samples": total - paired,
    }
