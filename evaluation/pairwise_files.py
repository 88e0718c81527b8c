"""Reading pairwise-judgment files into plain records (no Django).

Two shapes are understood:

- **Generic** (JSON list, JSONL or CSV): one row per judgment with `prompt`, `response_a`, `response_b`,
  `annotator`, `choice` (a / b / tie, also A, B, 1 = A better, 2 = B better, 0 = tie) and optional
  `source_a`, `source_b` (model or config names) and `id`. Rows with the same prompt and responses are one pair.
- **PandaLM test set** (Wang et al. 2023, `pandalm_testset.json`): one row per pair with `cmp_key`
  "modelA_modelB" (response1 comes from modelA), `instruction`, `input`, `response1`, `response2`
  and `annotator1..3` where 0 = tie, 1 = response1 better, 2 = response2 better.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

CHOICE_WORDS = {
    "a": "a", "1": "a", "response_a": "a", "response1": "a", "first": "a",
    "b": "b", "2": "b", "response_b": "b", "response2": "b", "second": "b",
    "tie": "tie", "0": "tie", "draw": "tie", "equal": "tie", "same": "tie",
}  # fmt: skip


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
    word = str(value).strip().lower()
    if word not in CHOICE_WORDS:
        raise PairwiseFileError(f"row {row}: choice {value!r} is not a, b or tie (or 1, 2, 0)")
    return CHOICE_WORDS[word]


def read_rows(data: bytes, filename: str) -> list[dict]:
    text = data.decode("utf-8-sig")
    name = filename.lower()
    if name.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(text)))
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as error:
        raise PairwiseFileError(f"not valid JSON: {error}") from error
    if not isinstance(rows, list):
        raise PairwiseFileError("the JSON file must hold a list of rows")
    return rows


def is_pandalm(rows: list[dict]) -> bool:
    return bool(rows) and isinstance(rows[0], dict) and {"cmp_key", "response1", "response2"} <= rows[0].keys()


def pandalm_records(rows: list[dict]) -> list[PairRecord]:
    records = []
    for number, row in enumerate(rows, start=1):
        models = str(row["cmp_key"]).split("_")
        if len(models) != 2:
            raise PairwiseFileError(f"row {number}: cmp_key {row['cmp_key']!r} is not 'modelA_modelB'")
        prompt = str(row.get("instruction", "")).strip()
        if str(row.get("input", "")).strip():
            prompt += "\n\n" + str(row["input"]).strip()
        judgments = [
            (name, parse_choice(row[name], row=number))
            for name in sorted(key for key in row if key.startswith("annotator"))
            if row[name] is not None and row[name] != ""
        ]
        records.append(
            PairRecord(
                prompt=prompt,
                response_a=str(row["response1"]),
                response_b=str(row["response2"]),
                source_a=models[0],
                source_b=models[1],
                external_id=str(row.get("idx", number - 1)),
                judgments=judgments,
            )
        )
    return records


def generic_records(rows: list[dict]) -> list[PairRecord]:
    required = {"prompt", "response_a", "response_b", "annotator", "choice"}
    pairs: dict[tuple[str, str, str, str, str], PairRecord] = {}
    for number, row in enumerate(rows, start=1):
        missing = required - set(row)
        if missing:
            raise PairwiseFileError(f"row {number}: missing column(s) {', '.join(sorted(missing))}")
        source_a = str(row.get("source_a") or "A")
        source_b = str(row.get("source_b") or "B")
        key = (str(row["prompt"]), str(row["response_a"]), str(row["response_b"]), source_a, source_b)
        record = pairs.get(key)
        if record is None:
            record = pairs[key] = PairRecord(*key, external_id=str(row.get("id", "")))
        annotator = str(row["annotator"]).strip()
        if not annotator:
            raise PairwiseFileError(f"row {number}: empty annotator")
        record.judgments.append((annotator, parse_choice(row["choice"], row=number)))
    return list(pairs.values())


def parse_pairwise_file(data: bytes, filename: str) -> list[PairRecord]:
    rows = read_rows(data, filename)
    if not rows:
        raise PairwiseFileError("the file holds no rows")
    return pandalm_records(rows) if is_pandalm(rows) else generic_records(rows)
