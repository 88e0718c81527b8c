"""Reading pairwise-judgment files into plain records (no Django).

Two shapes are understood:

- **Generic** (JSON list, JSONL or CSV): one row per judgment with `prompt`, `response_a`, `response_b`,
  `annotator`, `choice` (a / b / tie, also A, B, 1 = A better, 2 = B better, 0 = tie) and optional
  `source_a`, `source_b` (model or config names) and `id`. Rows with the same prompt and responses are one pair.
- **PandaLM test set** (Wang et al. 2023, `pandalm_testset.json`): one row per pair with `cmp_key`
  "modelA_modelB" (response1 comes from modelA), `instruction`, `input`, `response1`, `response2`
  and `annotator1..3` where 0 = tie, 1 = response1 better, 2 = response2 better.

Files are streamed through synthstudio.importing's readers, so the limits of every upload apply here too
(bytes per line or record, columns, JSON nesting). Every malformed row (a missing column, a value of the
wrong type, an unknown choice) raises PairwiseFileError naming the row; nothing else escapes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import PurePath
from typing import Any, BinaryIO

from synthstudio import importing

CHOICE_WORDS = {
    "a": "a", "1": "a", "response_a": "a", "response1": "a", "first": "a",
    "b": "b", "2": "b", "response_b": "b", "response2": "b", "second": "b",
    "tie": "tie", "0": "tie", "draw": "tie", "equal": "tie", "same": "tie",
}  # fmt: skip
GENERIC_COLUMNS = ("prompt", "response_a", "response_b", "annotator", "choice")
PANDALM_COLUMNS = ("cmp_key", "response1", "response2")

Rows = Iterable[tuple[int, dict[str, Any]]]  # (1-based row number, row)


class PairwiseFileError(ValueError):
    """A file that cannot be read as pairwise judgments; the message names the row."""


@dataclass
class PairRecord:
    prompt: str
    response_a: str
    response_b: str
    source_a: str
    source_b: str
    external_id: str = ""
    judgments: list[tuple[str, str]] = field(default_factory=list)  # (annotator name, choice a/b/tie)


def parse_choice(value: object, *, row: int) -> str:
    word = str(value).strip().lower() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if word not in CHOICE_WORDS:
        raise PairwiseFileError(f"row {row}: choice {value!r} is not a, b or tie (or 1, 2, 0)")
    return CHOICE_WORDS[word]


def _kind(value: object) -> str:
    return "an object" if isinstance(value, dict) else "an array" if isinstance(value, list) else "null"


def _text(row: dict[str, Any], key: str, number: int, *, default: str | None = None) -> str:
    """The cell as text. Any JSON scalar is fine (the PandaLM test set has responses that are `true`, read as
    "True" as they always were); objects, arrays and a missing value (null, a short CSV row) are not, unless
    there is a default."""
    value = row.get(key)
    if value is None and default is not None:
        return default
    if value is None or isinstance(value, dict | list):
        raise PairwiseFileError(f"row {number}: {key!r} must be text, got {_kind(value)}")
    return str(value)


def _require(row: dict[str, Any], columns: Iterable[str], number: int) -> None:
    missing = [column for column in columns if column not in row]
    if missing:
        raise PairwiseFileError(f"row {number}: missing column(s) {', '.join(sorted(missing))}")


def read_rows(source: bytes | BinaryIO, filename: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) of a CSV/TSV, JSONL or JSON-array file (by its name; anything else is read as a JSON
    array), streamed, with the reader's errors (malformed, too long, too deep, not UTF-8) as PairwiseFileError."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    file_format = importing.EXTENSIONS.get(PurePath(filename).suffix.lower(), "json")
    try:
        for record in importing.read_records(stream, file_format):
            yield record.row, record.values
    except (importing.ImportFileError, importing.RowError) as error:
        raise PairwiseFileError(str(error).rstrip(".")) from None


def is_pandalm(row: dict[str, Any]) -> bool:
    return set(PANDALM_COLUMNS) <= row.keys()


def pandalm_records(rows: Rows) -> list[PairRecord]:
    records = []
    for number, row in rows:
        _require(row, PANDALM_COLUMNS, number)
        cmp_key = _text(row, "cmp_key", number)
        models = cmp_key.split("_")
        if len(models) != 2:
            raise PairwiseFileError(f"row {number}: cmp_key {cmp_key!r} is not 'modelA_modelB'")
        prompt = _text(row, "instruction", number, default="").strip()
        extra = _text(row, "input", number, default="").strip()
        if extra:
            prompt += "\n\n" + extra
        judgments = [
            (name, parse_choice(row[name], row=number))
            for name in sorted(key for key in row if key.startswith("annotator"))
            if row[name] is not None and row[name] != ""
        ]
        records.append(
            PairRecord(
                prompt=prompt,
                response_a=_text(row, "response1", number),
                response_b=_text(row, "response2", number),
                source_a=models[0],
                source_b=models[1],
                external_id=_text(row, "idx", number, default=str(number - 1)),
                judgments=judgments,
            )
        )
    return records


def generic_records(rows: Rows) -> list[PairRecord]:
    pairs: dict[tuple[str, str, str, str, str], PairRecord] = {}
    for number, row in rows:
        _require(row, GENERIC_COLUMNS, number)
        source_a = _text(row, "source_a", number, default="") or "A"
        source_b = _text(row, "source_b", number, default="") or "B"
        key = (_text(row, "prompt", number), _text(row, "response_a", number), _text(row, "response_b", number),
               source_a, source_b)  # fmt: skip
        record = pairs.get(key)
        if record is None:
            record = pairs[key] = PairRecord(*key, external_id=_text(row, "id", number, default=""))
        annotator = _text(row, "annotator", number).strip()
        if not annotator:
            raise PairwiseFileError(f"row {number}: empty annotator")
        record.judgments.append((annotator, parse_choice(row["choice"], row=number)))
    return list(pairs.values())


def parse_pairwise_file(source: bytes | BinaryIO, filename: str) -> list[PairRecord]:
    """Records from a file (bytes or a binary stream, read once): the first row decides the shape."""
    rows = read_rows(source, filename)
    first = next(rows, None)
    if first is None:
        raise PairwiseFileError("the file holds no rows")
    everything = chain([first], rows)
    return pandalm_records(everything) if is_pandalm(first[1]) else generic_records(everything)
