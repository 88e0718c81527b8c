"""LLM labelling, the pure part: the prompt an LLM labels with, and its answers turned into label distributions.

No Django. The prompt is the codebook humans read (task, labels with descriptions and examples, guidelines)
plus optional demos; each label gets a single-token key (A, B, C …) so that one output token names it.

Distributions (ALGORITHMS.md §3):
- token logprobs: sum exp(logprob) over the token variants of each key (case, leading space), renormalise
  over the label set, give labels missing from the top-k a floor;
- self-consistency / prompt variants: p_c = count_c / n over the answers that named a valid label; the
  majority is the label (CoAnnotating, Li et al. EMNLP 2023, used one call per paraphrased prompt);
- verbalised confidence: a JSON {"label": ..., "confidence": ...}; the named label gets the confidence and
  the rest is shared evenly (the weakest signal: Xiong et al. 2024).
A response that names no valid label gives `LabelReading(valid=False, label="")`: recorded, never guessed.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from string import ascii_uppercase

LOGPROB_FLOOR = 1e-4

METHOD_LOGPROBS = "logprobs"
METHOD_SELF_CONSISTENCY = "self_consistency"
METHOD_PROMPT_VARIANTS = "prompt_variants"
METHOD_VERBALISED = "verbalised"


@dataclass(frozen=True)
class LabelSpec:
    name: str
    description: str = ""
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodebookSpec:
    task_description: str
    labels: tuple[LabelSpec, ...]
    guidelines: str = ""

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    @property
    def keys(self) -> list[str]:
        return label_keys(len(self.labels))


@dataclass(frozen=True)
class Demo:
    text: str
    label: str


@dataclass(frozen=True)
class LabelReading:
    """One sample's label from one or more LLM answers."""

    label: str
    distribution: dict[str, float]
    valid: bool
    confidence: float | None = None
    rationale: str = ""
    details: dict = field(default_factory=dict)


def label_keys(count: int) -> list[str]:
    """Single-token keys for `count` labels: A, B, … Z, then AA, AB … (only the first 26 are one token)."""
    keys = list(ascii_uppercase[:count])
    extra = count - len(keys)
    for index in range(extra):
        keys.append(ascii_uppercase[index // 26] + ascii_uppercase[index % 26])
    return keys


# Paraphrases of the instruction, one call each for the prompt-variants method (CoAnnotating).
PROMPT_VARIANTS: tuple[str, ...] = (
    "Which label fits the text best? Answer with the letter of the label only.",
    "Read the text and pick the one label that describes it. Reply with just the label's letter.",
    "As an expert annotator following the codebook, classify the text. Output only the letter.",
    "Decide which of the labels applies to the text. Respond with a single letter.",
    "Choose the most appropriate category for the text. Give only its letter, nothing else.",
)

INSTRUCTION_LETTER = "Answer with the letter of the label only."
INSTRUCTION_VERBALISED = (
    'Answer with a JSON object {"label": "<letter>", "confidence": <number from 0 to 1>, '
    '"rationale": "<one short sentence>"} where confidence is the probability that your label is correct.'
)


def render_codebook(codebook: CodebookSpec) -> str:
    """The codebook as the LLM reads it: the same task, labels, descriptions, examples and guidelines."""
    lines = ["Suppose you are an expert annotator. " + codebook.task_description.strip(), "", "Labels:"]
    for key, label in zip(codebook.keys, codebook.labels, strict=True):
        line = f"{key}. {label.name}"
        if label.description.strip():
            line += f" — {label.description.strip()}"
        lines.append(line)
        for example in label.examples[:3]:
            lines.append(f"   Example: {example.strip()}")
    if codebook.guidelines.strip():
        lines += ["", "Guidelines:", codebook.guidelines.strip()]
    return "\n".join(lines)


def build_label_messages(
    codebook: CodebookSpec,
    text: str,
    *,
    demos: Sequence[Demo] = (),
    method: str = METHOD_LOGPROBS,
    variant: int = 0,
) -> list[dict[str, str]]:
    """Chat messages asking for the label of `text`. Demos become user/assistant turns before the text."""
    if method == METHOD_VERBALISED:
        instruction = INSTRUCTION_VERBALISED
    elif method == METHOD_PROMPT_VARIANTS:
        instruction = PROMPT_VARIANTS[variant % len(PROMPT_VARIANTS)]
    else:
        instruction = INSTRUCTION_LETTER
    system = render_codebook(codebook) + "\n\n" + instruction
    key_of = dict(zip(codebook.label_names, codebook.keys, strict=True))
    messages = [{"role": "system", "content": system}]
    for demo in demos:
        if demo.label not in key_of:
            continue
        messages.append({"role": "user", "content": f"Text: {demo.text}"})
        answer = key_of[demo.label]
        if method == METHOD_VERBALISED:
            answer = json.dumps({"label": answer, "confidence": 1.0, "rationale": "verified by a human"})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": f"Text: {text}"})
    return messages


def _normalise_token(token: str) -> str:
    return token.strip().strip(".):,\"'").upper()


def match_label(answer: str, codebook: CodebookSpec) -> str | None:
    """The label an answer names: a key ("B", "b)", " B."), a label name (any case), or "B. name"; else None."""
    cleaned = answer.strip()
    if not cleaned:
        return None
    by_key = dict(zip(codebook.keys, codebook.label_names, strict=True))
    by_name = {name.lower(): name for name in codebook.label_names}
    if cleaned.lower().strip(".\"' ") in by_name:
        return by_name[cleaned.lower().strip(".\"' ")]
    token = _normalise_token(cleaned)
    if token in by_key:
        return by_key[token]
    first = re.match(r"^\W*([A-Za-z]{1,2})\b[.):\s-]*(.*)$", cleaned, flags=re.S)
    if first and first.group(1).upper() in by_key:
        rest = first.group(2).strip().lower()
        named = by_key[first.group(1).upper()]
        if not rest or rest.startswith(named.lower()):
            return named
    return None


def distribution_from_logprobs(
    top_logprobs: Sequence[tuple[str, float]], codebook: CodebookSpec, *, floor: float = LOGPROB_FLOOR
) -> LabelReading:
    """Label distribution from the first output token's top logprobs [(token, logprob), …].

    Token variants of a key ("A", " A", "a", " a.") add up. Labels absent from the top-k get `floor` before
    renormalising. Invalid when no top token names any label.
    """
    by_key = dict(zip(codebook.keys, codebook.label_names, strict=True))
    mass = dict.fromkeys(codebook.label_names, 0.0)
    for token, logprob in top_logprobs:
        key = _normalise_token(token)
        if key in by_key and logprob is not None and math.isfinite(logprob):
            mass[by_key[key]] += math.exp(logprob)
    if not any(mass.values()):
        return LabelReading("", {}, False, details={"top_logprobs": [list(pair) for pair in top_logprobs]})
    floored = {name: max(value, floor) for name, value in mass.items()}
    total = sum(floored.values())
    distribution = {name: value / total for name, value in floored.items()}
    label = max(codebook.label_names, key=lambda name: distribution[name])
    return LabelReading(label, distribution, True, confidence=distribution[label])


def distribution_from_votes(answers: Sequence[str], codebook: CodebookSpec) -> LabelReading:
    """Self-consistency / prompt variants: p_c = count_c / (answers naming a valid label); majority wins,
    ties go to the label listed first in the codebook. Invalid when no answer names a label."""
    named = [match_label(answer, codebook) for answer in answers]
    votes = Counter(label for label in named if label)
    details = {"answers": len(answers), "invalid_answers": sum(1 for label in named if label is None)}
    if not votes:
        return LabelReading("", {}, False, details=details)
    total = sum(votes.values())
    distribution = {name: votes.get(name, 0) / total for name in codebook.label_names}
    label = max(
        codebook.label_names, key=lambda name: (votes.get(name, 0), -codebook.label_names.index(name))
    )
    return LabelReading(label, distribution, True, confidence=distribution[label], details=details)


def _json_object(text: str) -> dict | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value = json.loads(text[start : end + 1])
    except (json.JSONDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def parse_verbalised(answer: str, codebook: CodebookSpec) -> LabelReading:
    """Verbalised confidence: {"label", "confidence" in [0, 1] (or a percentage), "rationale"}.

    The label gets the confidence, the other labels share the rest evenly (each at least the floor). A
    readable label with a missing or unreadable confidence counts as confidence 1, noted in `details`.
    """
    payload = _json_object(answer)
    if payload is None:
        return LabelReading("", {}, False, details={"error": "no JSON object"})
    label = match_label(str(payload.get("label", "")), codebook)
    if label is None:
        return LabelReading("", {}, False, details={"error": "no valid label"})
    raw_confidence = payload.get("confidence")
    try:
        confidence = float(raw_confidence)  # type: ignore[arg-type]  # None and junk land in except
        if confidence > 1.0 and confidence <= 100.0:
            confidence /= 100.0
        if not 0.0 <= confidence <= 1.0:
            raise ValueError
        details: dict = {}
    except (TypeError, ValueError):
        confidence = 1.0
        details = {"error": "no usable confidence", "confidence": raw_confidence}
    others = [name for name in codebook.label_names if name != label]
    rest = (1.0 - confidence) / len(others) if others else 0.0
    distribution = {name: (confidence if name == label else rest) for name in codebook.label_names}
    floored = {name: max(value, LOGPROB_FLOOR) for name, value in distribution.items()}
    total = sum(floored.values())
    distribution = {name: value / total for name, value in floored.items()}
    rationale = str(payload.get("rationale", ""))[:500]
    return LabelReading(
        label, distribution, True, confidence=distribution[label], rationale=rationale, details=details
    )
