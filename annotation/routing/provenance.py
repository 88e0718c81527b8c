"""Where each sample and its LLM label distribution came from, as routing reads them: the generation
conditions and config as learned-router features, and what produced each distribution for the reasons
("entropy over 5 prompt variants"). One query each, aligned with a ProjectLabels' samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from annotation.labelling.distributions import PROMPT_VARIANTS
from annotation.models import LabellingRun
from annotation.routing.router import one_hot_conditions
from synthstudio.models import LabelMethod, LLMAnnotation, Sample

CONDITION_VALUE_CHARS = 40  # a longer condition value (a generated sub-topic) is cut in the feature's name


def sample_conditions(*, samples: Sequence[Sample]) -> list[dict[str, str]]:
    """Per sample, {dimension: value} of the generation conditions it was made under, plus "config" (the
    generation config's name and version) and "origin" (imported / generated). Imported samples have only
    their origin. Reads only the JSON keys it needs, not the stored prompts."""
    if not samples:
        return []
    rows = {
        row["id"]: row
        for row in Sample.objects.filter(project_id=samples[0].project_id).values(
            "id",
            "origin",
            "provenance__conditions",
            "provenance__config",
            "provenance__config_name",
            "provenance__config_version",
        )
    }
    result = []
    for sample in samples:
        row = rows.get(sample.pk) or {}
        values: dict[str, str] = {"origin": str(row.get("origin") or "")}
        conditions = row.get("provenance__conditions")
        if isinstance(conditions, dict):
            for key, value in conditions.items():
                if isinstance(value, str | int | float | bool):
                    values[str(key)] = str(value)[:CONDITION_VALUE_CHARS]
        config = row.get("provenance__config")
        if config is not None:
            name, version = row.get("provenance__config_name"), row.get("provenance__config_version")
            values["config"] = f"{name} v{version}" if name else str(config)
        result.append(values)
    return result


def router_conditions(*, samples: Sequence[Sample]) -> tuple[np.ndarray | None, list[str]]:
    """The learned router's condition features: a one-hot (n, c) matrix with column names such as
    "topic=sport", "config=Reviews v3", "origin=imported"; (None, []) without samples."""
    if not samples:
        return None, []
    matrix, names = one_hot_conditions(sample_conditions(samples=samples))
    return matrix, names


def describe_distribution(method: str, answers: int | None) -> str:
    """What produced a distribution, in the words a reason uses after "entropy over"."""
    if method == LabelMethod.PROMPT_VARIANTS:
        if not answers:
            return "prompt variants"
        variants = min(answers, len(PROMPT_VARIANTS))
        if answers > variants:
            return f"{answers} answers to {variants} prompt variants"
        return f"{variants} prompt variants"
    if method == LabelMethod.SELF_CONSISTENCY:
        return f"{answers} self-consistency samples" if answers else "self-consistency samples"
    if method == LabelMethod.LOGPROBS:
        return "token logprobs"
    if method == LabelMethod.VERBALISED:
        return "a verbalised confidence"
    if method == LabelMethod.OFFLINE:
        return "the offline labeller's similarities"
    return "an imported distribution"


def distribution_sources(*, samples: Sequence[Sample]) -> list[str]:
    """Per sample, what produced its current LLM distribution ("5 prompt variants", "token logprobs", …);
    "" where it has no current LLM label. Two queries."""
    if not samples:
        return []
    current = dict(
        (sample_id, (method, run_ref))
        for sample_id, method, run_ref in LLMAnnotation.objects.filter(
            sample__project_id=samples[0].project_id, is_current=True
        ).values_list("sample_id", "method", "run_ref")
    )
    run_ids = {
        int(run_ref.split(":", 1)[1])
        for _, run_ref in current.values()
        if run_ref.startswith("labelling:") and run_ref.split(":", 1)[1].isdigit()
    }
    answers_of = dict(LabellingRun.objects.filter(pk__in=run_ids).values_list("pk", "samples_per_item"))
    sources = []
    for sample in samples:
        if sample.pk not in current:
            sources.append("")
            continue
        method, run_ref = current[sample.pk]
        run_id = run_ref.split(":", 1)[1] if run_ref.startswith("labelling:") else ""
        sources.append(
            describe_distribution(method, answers_of.get(int(run_id)) if run_id.isdigit() else None)
        )
    return sources
