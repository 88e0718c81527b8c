"""The neutral shape between synthstudio and other tools' files: one Item per text, with every human answer
(and who gave it) and every LLM prediction (with its whole distribution). Readers check labels against the
codebook here, so every format refuses an unknown label the same way."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class InterchangeError(ValueError):
    """A file or one of its records cannot be imported; `position` is the record's 1-based place."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass
class Answer:
    """One human's label. `annotator` is how the file names them (an email, a username or a tool's user id);
    `adjudicated` marks a ground-truth / reviewer decision; `lead_time` is seconds spent."""

    label: str
    annotator: str = ""
    lead_time: float | None = None
    adjudicated: bool = False


@dataclass
class Prediction:
    """An LLM's (or model's) label with its distribution over the codebook ({} when the file has none)."""

    label: str
    distribution: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    model_name: str = ""
    method: str = ""


@dataclass
class Item:
    position: int
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    external_id: Any = None
    split: str = ""
    weight: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    original_text: str = ""  # the text before a correction the source accepted


class LabelChecker:
    """Maps a file's label to the codebook's spelling (exact, then case-insensitive) or refuses it, naming the
    record: the same rule as the CSV import (synthstudio.importing.RowParser)."""

    def __init__(self, label_names: Iterable[str]) -> None:
        self.label_names = list(label_names)
        self._canonical = {name: name for name in self.label_names}
        for name in self.label_names:
            self._canonical.setdefault(name.casefold(), name)

    def label(self, value: Any, *, where: str, position: int) -> str:
        text = str(value).strip()
        if not self.label_names:
            raise InterchangeError(
                f"{where} has the label {text!r} but the project's codebook has no labels yet: write the "
                "codebook before importing labels.",
                position=position,
            )
        name = self._canonical.get(text) or self._canonical.get(text.casefold())
        if name is None:
            raise InterchangeError(
                f"{where}: the label {text!r} is not in the codebook ({', '.join(self.label_names)}).",
                position=position,
            )
        return name

    def distribution(self, value: Any, *, where: str, position: int) -> dict[str, float]:
        """{label: probability} with the codebook's spelling; unknown labels or bad numbers refused. Kept as
        written when it sums to 1 (a round trip gives back the same floats), else normalised."""
        if not isinstance(value, dict) or not value:
            raise InterchangeError(
                f"{where}: the distribution is not a {{label: probability}} object.", position=position
            )
        result: dict[str, float] = {}
        for key, probability in value.items():
            name = self.label(key, where=where, position=position)
            if isinstance(probability, bool) or not isinstance(probability, int | float):
                raise InterchangeError(
                    f"{where}: the probability of {key!r} is not a number.", position=position
                )
            if not math.isfinite(probability) or probability < 0:
                raise InterchangeError(
                    f"{where}: the probability of {key!r} must be a finite number ≥ 0.", position=position
                )
            result[name] = result.get(name, 0.0) + float(probability)
        total = sum(result.values())
        if total <= 0:
            raise InterchangeError(f"{where}: the probabilities sum to 0.", position=position)
        if abs(total - 1.0) <= 1e-9:
            return result
        return {name: probability / total for name, probability in result.items()}


def score_or_none(value: Any) -> float | None:
    """A probability in [0, 1] from a file, or None when it is absent, not a number or out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def seconds_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def as_dict(value: Any) -> dict:
    """`value` when the file has an object there, else {} (untrusted files put anything anywhere)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []
