"""Curation filters (no Django): which labelled items a curated snapshot keeps, and what each filter removes.

Survey §3.2.1 (Long et al. 2024): exact and near-duplicate removal (Self-Instruct), an LLM-as-judge score
threshold (AlpaGasus), confidence and cross-condition consistency, human flags, and length/format rules.

Each filter is evaluated on its own so a page can show "this filter alone removes N"; an item is kept when no
enabled filter removes it. Human-verified items are exempt from the confidence and consistency filters: a
human already settled their label. Duplicate filters keep the first occurrence (lowest position).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from synthstudio.user_regex import UserPattern, UserPatternError, compile_user_pattern
from synthstudio.vectors import cosine_knn

# Judge ratings on the Self-Instruct A–D scale mapped to numbers, so a threshold is "at least B" = 3.
RATING_SCORES = {"A": 4.0, "B": 3.0, "C": 2.0, "D": 1.0}


@dataclass
class FilterSettings:
    exact_duplicates: bool = True
    near_duplicate_threshold: float | None = None  # cosine; None = off
    min_judge_score: float | None = None  # items without a score are kept
    min_confidence: float | None = None  # LLM-labelled items only
    require_consistency: bool = False  # LLM-labelled items only
    drop_flagged: bool = True
    min_chars: int = 0
    max_chars: int | None = None
    must_match: str = ""
    must_not_match: str = ""

    @classmethod
    def from_dict(cls, data: dict) -> FilterSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in (data or {}).items() if key in known})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CurationItem:
    text: str
    label: str = ""
    human_verified: bool = False
    confidence: float | None = None  # the LLM's confidence in the final label
    llm_labels: frozenset[str] = field(default_factory=frozenset)  # labels over all runs/prompts
    judge_score: float | None = None
    flagged: bool = False
    excluded: bool = False  # a lead excluded it on the samples page (always removed)


@dataclass(frozen=True)
class CurationResult:
    keep: np.ndarray  # bool per item
    removed_by: dict[str, np.ndarray]  # filter name -> bool mask of what that filter alone removes

    @property
    def counts(self) -> dict[str, int]:
        return {name: int(mask.sum()) for name, mask in self.removed_by.items()}


FILTER_NAMES = {
    "unlabelled": "No final label",
    "exact_duplicates": "Exact duplicates",
    "near_duplicates": "Near-duplicates",
    "judge_score": "Judge score below threshold",
    "confidence": "LLM confidence below threshold",
    "consistency": "Labelled differently across runs",
    "flagged": "Flagged by a reviewer",
    "excluded": "Excluded by a lead (samples page)",
    "length": "Length outside limits",
    "format": "Format rules",
}


def normalise_for_duplicates(text: str) -> str:
    return " ".join(text.split()).casefold()


def exact_duplicates(texts: Sequence[str]) -> np.ndarray:
    """True for every item whose normalised text appeared earlier."""
    seen: set[str] = set()
    out = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        key = normalise_for_duplicates(text)
        out[i] = key in seen
        seen.add(key)
    return out


def near_duplicates(embeddings: np.ndarray, threshold: float, *, k: int = 10) -> np.ndarray:
    """True for items with cosine >= threshold to an earlier item that is itself kept (greedy, in order).

    Uses the blocked kNN graph, so memory is O(n·k); an item with more than k closer neighbours may miss a
    duplicate further down its list, which is the price of not building the n×n matrix.
    """
    n = embeddings.shape[0]
    removed = np.zeros(n, dtype=bool)
    if n < 2:
        return removed
    neighbours, similarities = cosine_knn(embeddings, k)
    for i in range(n):
        for j, sim in zip(neighbours[i], similarities[i], strict=True):
            if sim < threshold:
                break
            if j < i and not removed[j]:
                removed[i] = True
                break
    return removed


# The settings fields holding a user's regular expression, with the label the curation form gives them.
PATTERN_RULES = {"must_match": "Text must match", "must_not_match": "Text must not match"}


def compile_rule(pattern: str) -> UserPattern | None:
    """The compiled pattern (RE2: linear time), or None when empty. Raises UserPatternError for one RE2
    refuses (forms report it; saved settings go through `without_unusable_rules`)."""
    return compile_user_pattern(pattern) if pattern else None


def pattern_problems(settings: FilterSettings) -> dict[str, str]:
    """Settings field -> why its pattern cannot run. Settings saved before patterns ran on RE2 (or edited
    outside the form) may hold a backreference or lookaround that `re` accepted."""
    problems = {}
    for name in PATTERN_RULES:
        try:
            compile_rule(getattr(settings, name))
        except UserPatternError as error:
            problems[name] = str(error)
    return problems


def without_unusable_rules(settings: FilterSettings) -> tuple[FilterSettings, dict[str, str]]:
    """The settings with every pattern that cannot run switched off, and what was switched off and why:
    a preview shows the problem and counts the rest instead of failing the page."""
    problems = pattern_problems(settings)
    return replace(settings, **dict.fromkeys(problems, "")), problems  # type: ignore[arg-type]  # pattern fields are str


def unusable_rules_message(problems: dict[str, str]) -> str:
    """Why a snapshot was not built: it must hold exactly the settings it records, so a rule that cannot
    run stops the build instead of being skipped."""
    rules = " ".join(
        f"The rule “{PATTERN_RULES[name]}” cannot run: {message}" for name, message in problems.items()
    )
    return f"No snapshot was built. {rules} Fix it on the curation page and create the snapshot again."


def curate(
    items: Sequence[CurationItem], settings: FilterSettings, *, embeddings: np.ndarray | None = None
) -> CurationResult:
    n = len(items)
    empty = np.zeros(n, dtype=bool)
    removed_by: dict[str, np.ndarray] = {
        "unlabelled": np.array([not item.label for item in items], dtype=bool)
    }
    removed_by["exact_duplicates"] = (
        exact_duplicates([item.text for item in items]) if settings.exact_duplicates else empty
    )
    if settings.near_duplicate_threshold is not None and embeddings is not None and n:
        removed_by["near_duplicates"] = near_duplicates(embeddings, settings.near_duplicate_threshold)
    else:
        removed_by["near_duplicates"] = empty
    if settings.min_judge_score is not None:
        removed_by["judge_score"] = np.array(
            [item.judge_score is not None and item.judge_score < settings.min_judge_score for item in items],
            dtype=bool,
        )
    else:
        removed_by["judge_score"] = empty
    if settings.min_confidence is not None:
        removed_by["confidence"] = np.array(
            [
                bool(item.label)
                and not item.human_verified
                and (item.confidence is None or item.confidence < settings.min_confidence)
                for item in items
            ],
            dtype=bool,
        )
    else:
        removed_by["confidence"] = empty
    removed_by["consistency"] = (
        np.array([not item.human_verified and len(item.llm_labels) > 1 for item in items], dtype=bool)
        if settings.require_consistency
        else empty
    )
    removed_by["flagged"] = (
        np.array([item.flagged for item in items], dtype=bool) if settings.drop_flagged else empty
    )
    removed_by["excluded"] = np.array([item.excluded for item in items], dtype=bool)
    lengths = np.array([len(item.text) for item in items], dtype=np.int64)
    too_long = lengths > settings.max_chars if settings.max_chars is not None else empty
    removed_by["length"] = (lengths < settings.min_chars) | too_long
    must, must_not = compile_rule(settings.must_match), compile_rule(settings.must_not_match)
    removed_by["format"] = np.array(
        [
            (must is not None and not must.search(item.text))
            or (must_not is not None and bool(must_not.search(item.text)))
            for item in items
        ],
        dtype=bool,
    )
    keep = np.ones(n, dtype=bool)
    for mask in removed_by.values():
        keep &= ~mask
    return CurationResult(keep=keep, removed_by=removed_by)


def stratified_split(labels: Sequence[str], fractions: dict[str, float], *, seed: int = 0) -> list[str]:
    """Assign each item a split name so every label is divided in the given fractions (largest remainder)."""
    names = list(fractions)
    out = [names[0] if names else "train"] * len(labels)
    if not names:
        return out
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    total = sum(fractions.values())
    for label in sorted(by_label):
        members = np.array(by_label[label])
        rng.shuffle(members)
        exact = np.array([fractions[name] / total * len(members) for name in names])
        counts = np.floor(exact).astype(int)
        for extra in np.argsort(-(exact - counts), kind="stable")[: len(members) - counts.sum()]:
            counts[extra] += 1
        start = 0
        for name, count in zip(names, counts, strict=True):
            for i in members[start : start + count]:
                out[int(i)] = name
            start += count
    return out
