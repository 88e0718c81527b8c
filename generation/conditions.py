"""Generation conditions (no Django): combinations, balanced sampling without replacement, weights,
random-word injection and the between-rounds reweighting toward weak spots.

Survey §3.1.1 (Long et al. 2024): e_condition = {(c1, v1), …, (cn, vn)}; diversity comes from combinations
sampled without replacement with balanced coverage, optionally k random words per sample (TinyStories,
Eldan & Li 2023). Survey §3.1.2, dataset level: between rounds, move generation toward the classes and
conditions where the data is weakest (S3, Wang et al. 2023) and where coverage is thin (generate-then-expand).

A dimension is ``(name, [values])``; weights are ``{dimension: {value: weight}}`` (missing = 1).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Dimension = tuple[str, list[str]]
Weights = Mapping[str, Mapping[str, float]]

ENUMERATION_LIMIT = 20_000  # above this many combinations, balance each dimension's marginal instead


def combination_count(dimensions: Sequence[Dimension]) -> int:
    return math.prod(len(values) for _, values in dimensions) if dimensions else 1


def all_combinations(dimensions: Sequence[Dimension]) -> list[dict[str, str]]:
    names = [name for name, _ in dimensions]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(values for _, values in dimensions))
    ]


def value_shares(dimensions: Sequence[Dimension], weights: Weights | None) -> list[np.ndarray]:
    """Per dimension, the target share of each value (weights normalised; non-positive weights → 0)."""
    shares = []
    for name, values in dimensions:
        raw = np.array(
            [max(0.0, float((weights or {}).get(name, {}).get(v, 1.0))) for v in values], dtype=float
        )
        if raw.sum() <= 0:
            raw = np.ones(len(values))
        shares.append(raw / raw.sum())
    return shares


def plan_conditions(
    dimensions: Sequence[Dimension],
    count: int,
    *,
    mode: str = "balanced",
    seed: int = 0,
    weights: Weights | None = None,
) -> list[dict[str, str]]:
    """`count` condition dicts.

    mode "all": every combination in order, cycling when count exceeds them (count 0 = each once).
    mode "balanced": each combination is used in proportion to its weight (the product of its values'
    weights) — with equal weights that is without replacement: no combination repeats until all have been
    used; among equally due combinations the one whose values are furthest below their target shares wins
    (then at random), so value counts stay balanced on a partial pass. Above ENUMERATION_LIMIT combinations
    each dimension is balanced on its own.
    """
    dimensions = [(name, list(values)) for name, values in dimensions if values]
    if not dimensions:
        return [{} for _ in range(count)]
    if mode == "all":
        combos = all_combinations(dimensions)
        if count <= 0:
            return combos
        return [dict(combos[i % len(combos)]) for i in range(count)]
    rng = np.random.default_rng(seed)
    shares = value_shares(dimensions, weights)
    usage = [np.zeros(len(values)) for _, values in dimensions]
    names = [name for name, _ in dimensions]
    plans: list[dict[str, str]] = []
    if combination_count(dimensions) <= ENUMERATION_LIMIT:
        index = np.array(
            list(itertools.product(*(range(len(values)) for _, values in dimensions))), dtype=np.int64
        )
        combo_share = np.ones(len(index))
        for d, share in enumerate(shares):
            combo_share *= share[index[:, d]]
        possible = combo_share > 0  # a combination with a zero-weight value is never used
        combo_usage = np.zeros(len(index))
        for _ in range(count):
            # primary: the combination furthest below its share (with equal weights: unused ones first,
            # i.e. without replacement); then the one whose values are furthest below their shares.
            primary = np.where(possible, (combo_usage + 1) / np.where(possible, combo_share, 1), np.inf)
            candidates = np.flatnonzero(np.isclose(primary, primary.min()))
            secondary = np.zeros(len(candidates))
            for d, share in enumerate(shares):
                values = index[candidates, d]
                secondary += (usage[d][values] + 1) / share[values]
            best = candidates[np.isclose(secondary, secondary.min())]
            chosen = int(rng.choice(best))
            combo_usage[chosen] += 1
            for d in range(len(dimensions)):
                usage[d][index[chosen, d]] += 1
            plans.append({names[d]: dimensions[d][1][index[chosen, d]] for d in range(len(dimensions))})
        return plans
    for _ in range(count):
        plan = {}
        for d, share in enumerate(shares):
            score = np.where(share > 0, (usage[d] + 1) / np.where(share > 0, share, 1), np.inf)
            best = np.flatnonzero(np.isclose(score, score.min()))
            chosen = int(rng.choice(best))
            usage[d][chosen] += 1
            plan[names[d]] = dimensions[d][1][chosen]
        plans.append(plan)
    return plans


def coverage(plans: Iterable[Mapping[str, str]]) -> dict[str, Counter]:
    """How often each value of each dimension occurs in the plans."""
    counts: dict[str, Counter] = {}
    for plan in plans:
        for name, value in plan.items():
            counts.setdefault(name, Counter())[value] += 1
    return counts


WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


def vocabulary_from(texts: Iterable[str], *, limit: int = 2000) -> list[str]:
    """Distinct lower-case words of four or more letters, most frequent first (ties alphabetical)."""
    counts = Counter(word.lower() for text in texts for word in WORD.findall(text))
    return [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]


def random_words(vocabulary: Sequence[str], k: int, rng: random.Random) -> list[str]:
    if k <= 0 or not vocabulary:
        return []
    return rng.sample(list(vocabulary), min(k, len(vocabulary)))


def reweight_toward_weakness(
    dimensions: Sequence[Dimension],
    weights: Weights | None,
    stats: Mapping[str, Mapping[str, Mapping[str, int]]],
    *,
    strength: float = 1.0,
) -> dict[str, dict[str, float]]:
    """New weights for the next round (S3, Wang et al. 2023: extrapolate from where the data is weakest).

    stats[dimension][value] counts, per value, the samples with that value:
      "generated" g, "reviewed" r, "corrected" c (humans corrected the generation/LLM label), and, when a
      held-out student was trained on the verified items, "student_scored" s and "student_wrong" w (its
      out-of-fold prediction missed the verified label).
    For each value:
        human   = (c + 1) / (r + 2)                    (Laplace-smoothed correction rate)
        student = (w + 1) / (s + 2)                    (Laplace-smoothed student error rate)
        weak    = human / mean(human) · student / mean(student)   (both: more corrections AND more errors)
        thin    = (mean(g) + 1) / (g + 1)              (under-covered values > 1)
        weight' = weight · (weak · thin) ** strength
    then each dimension's weights are scaled to average 1. A value nobody reviewed sits at 1/2 on both
    rates, so without student figures (s = w = 0 everywhere) the student factor is 1 for every value.
    """
    updated: dict[str, dict[str, float]] = {}
    for name, values in dimensions:
        old = np.array([float((weights or {}).get(name, {}).get(v, 1.0)) for v in values])
        per_value = [stats.get(name, {}).get(v, {}) for v in values]
        human = np.array([(s.get("corrected", 0) + 1) / (s.get("reviewed", 0) + 2) for s in per_value])
        student = np.array(
            [(s.get("student_wrong", 0) + 1) / (s.get("student_scored", 0) + 2) for s in per_value]
        )
        generated = np.array([s.get("generated", 0) for s in per_value], dtype=float)
        weak = (human / human.mean()) * (student / student.mean())
        thin = (generated.mean() + 1) / (generated + 1)
        new = old * (weak * thin) ** strength
        if new.sum() <= 0:
            new = np.ones(len(values))
        new = new * len(values) / new.sum()
        updated[name] = {v: round(float(w), 6) for v, w in zip(values, new, strict=True)}
    return updated


CONDITION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ConditionFilter:
    """The outputs viewer's `condition=name=value`: equality on one known condition, or why it was ignored.

    Only equality: the name becomes one JSON key and the value a literal, never an ORM lookup path, so
    `topic__regex=…`, `topic__isnull=True` or a name no config uses cannot reach the query."""

    name: str = ""
    value: str = ""
    ignored: str = ""  # shown to the user when the filter was not applied

    @property
    def applies(self) -> bool:
        return bool(self.name)


def condition_filter_parse(raw: str, known_names: Collection[str]) -> ConditionFilter:
    if not raw:
        return ConditionFilter()
    name, sep, value = raw.partition("=")
    if not sep or not value:
        return ConditionFilter(ignored="Write the condition filter as name=value.")
    if "__" in name or not CONDITION_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else name[:60] + "…"
        return ConditionFilter(
            ignored=f"“{shown}” is not a condition name: the filter takes name=value only."
        )
    if name not in known_names:
        known = ", ".join(sorted(known_names)) or "none"
        return ConditionFilter(ignored=f"No condition is named “{name}” (these runs have: {known}).")
    return ConditionFilter(name=name, value=value)
