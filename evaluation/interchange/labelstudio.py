"""Label Studio's formats, plain Python: its exports read into Items, Items written as tasks plus the labeling
config they need.

Read (Label Studio 1.23's exports):
- JSON (the snapshot export `POST /api/projects/{id}/exports/` and the Export button): an array of tasks
  `{"id", "data": {...}, "annotations": [{"result": [{"from_name", "to_name", "type": "choices", "value":
  {"choices": [...]}}], "completed_by", "lead_time", "was_cancelled", "ground_truth"}], "predictions": [...],
  "meta": {...}}`. The Export button lists predictions as ids only (`"predictions": [102]`): refused with a
  message naming the export that carries them, unless the mapping says to import without them.
- JSON_MIN and CSV: one flat record per annotation, the task's `data` keys, `id`, the choice keyed by the
  control's name, `annotator`, `annotation_id`, `created_at`, `updated_at`, `lead_time`. Records with the
  same `id` are one task answered by several annotators.

Which `data` key holds the text (and, for the flat formats, which key holds the label) is the mapping: `text`
by default; otherwise the reader refuses with the keys it found, and the import page offers them.

Written: one task per row, one annotation per human answer (`completed_by` with the annotator's email, which
Label Studio matches to its members), the LLM label as a prediction whose `model_version` is the model and
whose score is the label's probability; Label Studio keeps no per-choice scores, so the full distribution, the
row's `fields`, provenance and final label go in the task's `meta` (kept by Label Studio and exported back).
The labeling config (`<View><Text/><Choices/>`) is written from the same LabelingConfig, so the control names in
every result are the config's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from evaluation.interchange.items import (
    Answer,
    InterchangeError,
    Item,
    LabelChecker,
    Prediction,
    as_dict,
    as_list,
    score_or_none,
    seconds_or_none,
)

META_KEY = "synthstudio"  # our block in a task's `meta`
# data keys our export writes beside the text; anything else in `data` becomes a field of the sample
OWN_DATA_KEYS = ("fields", "synthstudio_id", "split", "weight", "original_text")
# JSON_MIN / CSV columns that describe the annotation, not the task's data
FLAT_ANNOTATION_KEYS = ("id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time")
ID_EXPORT_HINT = (
    "That is the Export button's JSON, which leaves the predictions out. Export the project with full "
    "predictions instead (Label Studio API: POST /api/projects/<id>/exports/, then download that export as "
    "JSON), or tick “Import without the predictions listed as ids”."
)


@dataclass
class LabelStudioMapping:
    """The choices of the mapping step. Empty keys mean: `text` for the text, the one key that can hold the
    label for the flat formats; `control_name` picks one Choices control when a task has several."""

    text_key: str = ""
    label_key: str = ""
    control_name: str = ""
    skip_prediction_ids: bool = False
    tool: str = "labelstudio"  # or one of evaluation.interchange.formats.TOOLS

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "text_key": self.text_key,
            "label_key": self.label_key,
            "control_name": self.control_name,
            "skip_prediction_ids": self.skip_prediction_ids,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelStudioMapping:
        return cls(
            tool=str(data.get("tool") or "labelstudio"),
            text_key=str(data.get("text_key") or ""),
            label_key=str(data.get("label_key") or ""),
            control_name=str(data.get("control_name") or ""),
            skip_prediction_ids=bool(data.get("skip_prediction_ids")),
        )


@dataclass
class ReadResult:
    items: list[Item]
    variant: str  # "JSON", "JSON_MIN" or "CSV"; another tool's name for its files
    prediction_ids_skipped: int = 0
    not_imported: int = 0  # Prodigy's rejected or ignored binary answers


# ------------------------------------------------------------------------------------------------ reading


def task_name(position: int, task: Any) -> str:
    """ "Task 3" or "Task 3 (id 1017)": the position to find it in the file, the id Label Studio shows."""
    task_id = task.get("id") if isinstance(task, dict) else None
    return (
        f"Task {position} (id {task_id})"
        if isinstance(task_id, int | str) and not isinstance(task_id, bool) and task_id != ""
        else f"Task {position}"
    )


def export_variant(tasks: Any) -> str:
    """Which export this decoded JSON is: "JSON" (tasks with `data`) or "JSON_MIN" (flat records)."""
    if not isinstance(tasks, list):
        raise InterchangeError(
            "A Label Studio export is a JSON array of tasks (JSON, JSON_MIN) or a CSV file; this JSON is "
            f"{type(tasks).__name__ if not isinstance(tasks, dict) else 'an object'}."
        )
    first = next((task for task in tasks if isinstance(task, dict)), None)
    if first is not None and "data" not in first and any(key in first for key in FLAT_ANNOTATION_KEYS):
        return "JSON_MIN"
    return "JSON"


def data_keys(records: Iterable[Any], *, variant: str) -> list[str]:
    """The keys found in the tasks' `data` (JSON) or the records (JSON_MIN, CSV), in order of appearance:
    what the mapping step offers as the text key."""
    keys: dict[str, None] = {}
    for record in records:
        values = record.get("data") if variant == "JSON" and isinstance(record, dict) else record
        if isinstance(values, dict):
            for key in values:
                if variant == "JSON" or key not in FLAT_ANNOTATION_KEYS:
                    keys.setdefault(str(key), None)
    return list(keys)


def read_labelstudio(
    records: list, *, variant: str, mapping: LabelStudioMapping, label_names: Iterable[str]
) -> ReadResult:
    """Items from a decoded export; InterchangeError naming the task on the first problem (all or nothing)."""
    checker = LabelChecker(label_names)
    if variant == "JSON":
        return _read_tasks(records, mapping, checker)
    return _read_flat(records, variant, mapping, checker)


def _text_key(values: dict, mapping: LabelStudioMapping, where: str, position: int, *, variant: str) -> str:
    key = mapping.text_key or "text"
    if isinstance(values.get(key), str) and values[key].strip():
        return key
    found = ", ".join(str(name) for name in values) or "none"
    container = "`data`" if variant == "JSON" else "the record"
    if mapping.text_key:
        raise InterchangeError(
            f"{where} has no text under {key!r} in {container} (keys found: {found}).", position=position
        )
    raise InterchangeError(
        f"{where} has no `text` key in {container}; its keys are: {found}. Choose which key holds the text "
        "on the import page (the text key) and upload again.",
        position=position,
    )


def _choice(result: Any, mapping: LabelStudioMapping, where: str, position: int) -> str:
    """The one choice in a `result` ("" when it has none); several Choices controls need `control_name`."""
    found: dict[str, list] = {}
    for region in result if isinstance(result, list) else []:
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            continue
        choices = region["value"].get("choices")
        if isinstance(choices, list):
            found.setdefault(str(region.get("from_name") or ""), []).extend(choices)
    if mapping.control_name:
        found = {name: values for name, values in found.items() if name == mapping.control_name}
    if len(found) > 1:
        raise InterchangeError(
            f"{where} answers several Choices controls ({', '.join(sorted(found))}); choose the control name "
            "on the import page.",
            position=position,
        )
    values = next(iter(found.values()), [])
    if len(values) > 1:
        raise InterchangeError(
            f"{where} picks several choices ({', '.join(map(str, values))}); synthstudio labels are single-choice.",
            position=position,
        )
    return str(values[0]) if values else ""


def _annotator(value: Any) -> str:
    """How Label Studio names who answered: {"email": ...} in full exports, an email string in JSON_MIN and
    CSV, a bare user id in the Export button's JSON (kept as "label-studio user 10")."""
    if isinstance(value, dict):
        for key in ("email", "username"):
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key].strip()
        value = value.get("id")
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return f"label-studio user {value}"
    return str(value).strip()[:254]


def _annotator_of(annotation: dict, ours: list, index: int, label: str) -> str:
    """The annotation's `completed_by` when it carries an email; else the name our export kept in the task's
    meta for the answer at this place (Label Studio credits annotations without a known email to whoever
    imported them, and our export leaves out `completed_by` for annotators without an email)."""
    completed_by = annotation.get("completed_by")
    if (
        isinstance(completed_by, dict)
        and isinstance(completed_by.get("email"), str)
        and completed_by["email"]
    ):
        return _annotator(completed_by)
    kept = ours[index] if index < len(ours) and isinstance(ours[index], dict) else {}
    if kept.get("label") == label and isinstance(kept.get("annotator"), str) and kept["annotator"]:
        return kept["annotator"][:254]
    return _annotator(completed_by)


def _own_meta(task: dict) -> dict:
    meta = task.get("meta")
    block = meta.get(META_KEY) if isinstance(meta, dict) else None
    return block if isinstance(block, dict) else {}


def _read_tasks(tasks: list, mapping: LabelStudioMapping, checker: LabelChecker) -> ReadResult:
    items: list[Item] = []
    skipped_ids = 0
    for position, task in enumerate(tasks, start=1):
        where = task_name(position, task)
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InterchangeError(f"{where} has no `data` object.", position=position)
        data = task["data"]
        text_key = _text_key(data, mapping, where, position, variant="JSON")
        own = _own_meta(task)
        fields = dict(data["fields"]) if isinstance(data.get("fields"), dict) else {}
        fields.update(
            {key: value for key, value in data.items() if key != text_key and key not in OWN_DATA_KEYS}
        )
        item = Item(
            position=position,
            text=data[text_key],
            fields=fields,
            external_id=task.get("id"),
            split=str(data["split"]) if isinstance(data.get("split"), str) else "",
            weight=score_or_none(data.get("weight")),
            provenance=dict(own["provenance"]) if isinstance(own.get("provenance"), dict) else {},
            original_text=data["original_text"] if isinstance(data.get("original_text"), str) else "",
        )
        ours_answers = as_list(own.get("answers"))
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            label = _choice(annotation.get("result"), mapping, where, position)
            if not label:
                continue
            label = checker.label(label, where=f"{where}, an annotation", position=position)
            item.answers.append(
                Answer(
                    label=label,
                    annotator=_annotator_of(annotation, ours_answers, len(item.answers), label),
                    lead_time=seconds_or_none(annotation.get("lead_time")),
                    adjudicated=annotation.get("ground_truth") is True,
                )
            )
        predictions = task.get("predictions") or []
        ids = [prediction for prediction in predictions if not isinstance(prediction, dict)]
        if ids and not mapping.skip_prediction_ids:
            listed = ", ".join(map(str, ids[:5])) + (", …" if len(ids) > 5 else "")
            raise InterchangeError(
                f"{where} lists its predictions as ids only ([{listed}]). {ID_EXPORT_HINT}", position=position
            )
        skipped_ids += len(ids)
        ours = as_dict(own.get("prediction"))
        for prediction in predictions:
            if isinstance(prediction, dict):
                parsed = _prediction(prediction, ours, mapping, checker, where, position)
                if parsed is not None:
                    item.predictions.append(parsed)
        items.append(item)
    return ReadResult(items, "JSON", skipped_ids)


def _prediction(
    prediction: dict,
    ours: dict,
    mapping: LabelStudioMapping,
    checker: LabelChecker,
    where: str,
    position: int,
) -> Prediction | None:
    label = _choice(prediction.get("result"), mapping, where, position)
    if not label:
        return None
    where = f"{where}, a prediction"
    label = checker.label(label, where=where, position=position)
    regions = [region for region in prediction.get("result") or [] if isinstance(region, dict)]
    score = score_or_none(prediction.get("score"))
    if score is None and regions:
        score = score_or_none(regions[0].get("score"))
    model = str(prediction.get("model_version") or "")[:200]
    distribution: dict[str, float] = {}
    method = ""
    # our own export keeps the whole distribution in the task's meta; it belongs to this prediction when the
    # model and label agree (a prediction added in Label Studio afterwards has only its score)
    if ours and ours.get("model_name", "") == model and ours.get("label") == label:
        if ours.get("distribution"):
            distribution = checker.distribution(ours["distribution"], where=where, position=position)
        method = str(ours.get("method") or "")
        if score is None:
            score = score_or_none(ours.get("confidence"))
    return Prediction(
        label=label, distribution=distribution, confidence=score, model_name=model, method=method
    )


def _flat_label(value: Any) -> str:
    """A JSON_MIN / CSV choice: a string, or {"choices": [...]} (JSON text in CSV) for multi-choice controls."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return value.strip()
    if isinstance(value, dict) and isinstance(value.get("choices"), list):
        return "\x00".join(str(choice) for choice in value["choices"])
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()


def _label_key(records: list[dict], text_key: str, mapping: LabelStudioMapping, checker: LabelChecker) -> str:
    """The mapping's label key, or the one key that can hold it: the only key besides the text and the
    annotation columns, or the only one whose values are all codebook labels."""
    if mapping.label_key:
        return mapping.label_key
    keys = [key for key in data_keys(records, variant="flat") if key != text_key]
    if len(keys) <= 1:
        return keys[0] if keys else ""
    names = {name.casefold() for name in checker.label_names}
    fitting = [
        key
        for key in keys
        if all(
            _flat_label(record.get(key)).casefold() in names
            for record in records
            if _flat_label(record.get(key))
        )
        and any(_flat_label(record.get(key)) for record in records)
    ]
    if len(fitting) == 1:
        return fitting[0]
    raise InterchangeError(
        f"Cannot tell which key holds the label: {', '.join(keys)}. Choose the label key (the name of the "
        "Choices control) on the import page."
    )


def _read_flat(records: list, variant: str, mapping: LabelStudioMapping, checker: LabelChecker) -> ReadResult:
    for position, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise InterchangeError(
                f"Record {position} of the {variant} export is not an object.", position=position
            )
    label_key = ""
    by_task: dict[Any, Item] = {}
    items: list[Item] = []
    for position, record in enumerate(records, start=1):
        where = f"Record {position}" + (
            f" (task id {record['id']})" if record.get("id") not in (None, "") else ""
        )
        text_key = _text_key(record, mapping, where, position, variant=variant)
        if position == 1:
            label_key = _label_key(records, text_key, mapping, checker)
        task_id = record.get("id")
        item = by_task.get(task_id) if task_id not in (None, "") else None
        if item is None:
            extra = set(FLAT_ANNOTATION_KEYS) | {text_key, label_key}
            item = Item(
                position=position,
                text=record[text_key],
                fields={
                    key: value
                    for key, value in record.items()
                    if key not in extra and key not in OWN_DATA_KEYS
                },
                external_id=task_id,
                split=str(record["split"]) if isinstance(record.get("split"), str) else "",
                weight=score_or_none(record.get("weight")),
            )
            items.append(item)
            if task_id not in (None, ""):
                by_task[task_id] = item
        label = _flat_label(record.get(label_key)) if label_key else ""
        if "\x00" in label:
            raise InterchangeError(
                f"{where} picks several choices ({label.replace(chr(0), ', ')}); synthstudio labels are "
                "single-choice.",
                position=position,
            )
        if label:
            item.answers.append(
                Answer(
                    label=checker.label(label, where=where, position=position),
                    annotator=_annotator(record.get("annotator")),
                    lead_time=seconds_or_none(record.get("lead_time")),
                )
            )
    return ReadResult(items, variant)


# ------------------------------------------------------------------------------------------------ writing


@dataclass(frozen=True)
class LabelingConfig:
    """The Label Studio project a task file is meant for: the XML and every task's control names come from
    here, so they cannot disagree. `labels` are (name, hotkey) in the codebook's order."""

    labels: tuple[tuple[str, str], ...]
    text_name: str = "text"
    choices_name: str = "label"
    instructions: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def xml(self) -> str:
        view = ElementTree.Element("View")
        if self.instructions:
            ElementTree.SubElement(view, "Header", value=self.instructions[:500])
        ElementTree.SubElement(view, "Text", name=self.text_name, value=f"${self.text_name}")
        choices = ElementTree.SubElement(
            view, "Choices", name=self.choices_name, toName=self.text_name, choice="single", showInline="true"
        )
        for name, hotkey in self.labels:
            attributes = {"value": name}
            if hotkey:
                attributes["hotkey"] = hotkey
            ElementTree.SubElement(choices, "Choice", attributes)
        ElementTree.indent(view)
        return ElementTree.tostring(view, encoding="unicode") + "\n"

    def result(self, label: str, *, score: float | None = None) -> list[dict]:
        region: dict[str, Any] = {
            "from_name": self.choices_name,
            "to_name": self.text_name,
            "type": "choices",
            "value": {"choices": [label]},
        }
        if score is not None:
            region["score"] = score
        return [region]


def labelstudio_task(
    *,
    config: LabelingConfig,
    sample_ref: int,
    text: str,
    fields: dict,
    split: str,
    weight: float,
    answers: list[Answer],
    prediction: Prediction | None,
    summary: dict,
) -> dict:
    """One task: `data` (text, fields, split, weight), an annotation per human answer, the LLM prediction, and
    in `meta` what Label Studio has no place for (the distribution, provenance, the final label)."""
    annotations = []
    for answer in answers:
        annotation: dict[str, Any] = {
            "result": config.result(answer.label),
            "was_cancelled": False,
            "ground_truth": answer.adjudicated,
        }
        if "@" in answer.annotator:  # Label Studio matches annotators to its members by email
            annotation["completed_by"] = {"email": answer.annotator}
        if answer.lead_time is not None:
            annotation["lead_time"] = answer.lead_time
        annotations.append(annotation)
    meta: dict[str, Any] = {**summary, "answers": [
        {"annotator": answer.annotator, "label": answer.label, "adjudicated": answer.adjudicated}
        for answer in answers
    ]}  # fmt: skip
    predictions = []
    if prediction is not None:
        entry: dict[str, Any] = {
            "model_version": prediction.model_name,
            "result": config.result(prediction.label, score=prediction.confidence),
        }
        if prediction.confidence is not None:
            entry["score"] = prediction.confidence
        predictions.append(entry)
        meta["prediction"] = {
            "model_name": entry["model_version"],
            "method": prediction.method,
            "label": prediction.label,
            "confidence": prediction.confidence,
            "distribution": prediction.distribution,
        }
    return {
        "id": sample_ref,
        "data": {
            config.text_name: text,
            "fields": fields,
            "synthstudio_id": sample_ref,
            "split": split,
            "weight": weight,
        },
        "annotations": annotations,
        "predictions": predictions,
        "meta": {META_KEY: meta},
    }
