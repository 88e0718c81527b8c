"""Prodigy, doccano and Argilla v2 files, plain Python: read into Items, written from a row's human answers
and LLM prediction (the same inputs as the Label Studio writer).

- Prodigy (`prodigy db-out`, JSONL): one line per answer. A choice task has `options` and `accept` (the ids
  chosen), a binary task `label` with `answer` accept/reject/ignore; `_annotator_id` names who answered
  ("<dataset>-<session>"); lines with the same text are one item. A rejected or ignored binary answer says
  what the text is not, which a single-label codebook cannot store: such lines are counted, not imported.
  Our export writes choice tasks and keeps the LLM's label, model and distribution in `meta`.
- doccano (text classification export, JSONL): `{"id", "text", "label": [names]}`; one label list per text,
  no annotators; other keys are kept as fields.
- Argilla v2 (`records.json` of `rg.Dataset.to_disk`, the layout of `Record.to_dict`): `{"id", "fields",
  "metadata", "suggestions": {question: {"value", "score", "agent"}}, "responses": {question: [{"value",
  "user_id"}]}, "vectors"}`. Argilla's user ids are UUIDs: our export derives one per annotator (uuid5) and
  keeps the names in metadata `annotators`; a suggestion's score is the label's probability, the whole
  distribution goes in metadata `llm_distribution` (Argilla scores one value per suggestion).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from evaluation.interchange.items import (
    Answer,
    InterchangeError,
    Item,
    LabelChecker,
    Prediction,
    as_dict,
    score_or_none,
)

TOOLS = {"prodigy": "Prodigy JSONL", "doccano": "doccano JSONL", "argilla": "Argilla v2 records.json"}
ARGILLA_TEXT_FIELD, ARGILLA_QUESTION = "text", "label"
ANNOTATOR_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "synthstudio:annotator")


def _record(value: Any, position: int, tool: str) -> dict:
    if not isinstance(value, dict):
        raise InterchangeError(
            f"Record {position} of the {TOOLS[tool]} file is not an object.", position=position
        )
    return value


def _text(record: dict, key: str, where: str, position: int) -> str:
    text = record.get(key)
    if not isinstance(text, str) or not text.strip():
        found = ", ".join(map(str, record)) or "none"
        raise InterchangeError(f"{where} has no text under {key!r} (keys found: {found}).", position=position)
    return text


def _prediction_from_meta(llm: Any, checker: LabelChecker, where: str, position: int) -> Prediction | None:
    """The LLM block our exports keep in a record's meta: {label, confidence, model_name, method, distribution}."""
    if not isinstance(llm, dict) or not llm.get("label"):
        return None
    label = checker.label(llm["label"], where=f"{where}, the LLM label", position=position)
    distribution = (
        checker.distribution(llm["distribution"], where=where, position=position)
        if llm.get("distribution")
        else {}
    )
    return Prediction(
        label=label,
        distribution=distribution,
        confidence=score_or_none(llm.get("confidence")),
        model_name=str(llm.get("model_name") or "")[:200],
        method=str(llm.get("method") or ""),
    )


def _llm_meta(prediction: Prediction | None) -> dict | None:
    if prediction is None:
        return None
    return {
        "label": prediction.label,
        "confidence": prediction.confidence,
        "model_name": prediction.model_name,
        "method": prediction.method,
        "distribution": prediction.distribution,
    }


def _own_keys(meta: Any, item: Item) -> None:
    """split, weight, fields, provenance and the original text our exports keep beside the text."""
    if not isinstance(meta, dict):
        return
    if isinstance(meta.get("split"), str):
        item.split = meta["split"]
    item.weight = score_or_none(meta.get("weight"))
    if isinstance(meta.get("fields"), dict):
        item.fields.update(meta["fields"])
    if isinstance(meta.get("provenance"), dict):
        item.provenance = dict(meta["provenance"])
    if isinstance(meta.get("synthstudio_id"), int | str):
        item.external_id = meta["synthstudio_id"]


# ------------------------------------------------------------------------------------------------ Prodigy


def read_prodigy(records: list, *, label_names: list[str]) -> tuple[list[Item], int]:
    """(items, binary answers not imported). Lines with the same text are one item, each line one answer."""
    checker = LabelChecker(label_names)
    items: dict[str, Item] = {}
    not_imported = 0
    for position, value in enumerate(records, start=1):
        record = _record(value, position, "prodigy")
        where = f"Line {position}"
        text = _text(record, "text", where, position)
        item = items.get(text)
        if item is None:
            item = items[text] = Item(position=position, text=text)
            meta = record.get("meta")
            _own_keys(meta, item)
            if isinstance(meta, dict):
                prediction = _prediction_from_meta(meta.get("llm"), checker, where, position)
                if prediction is not None:
                    item.predictions.append(prediction)
        answer = record.get("answer")
        if answer is None:
            continue  # a task nobody answered yet
        if "accept" in record and isinstance(record["accept"], list):  # a choice task
            if answer != "accept":
                continue
            if len(record["accept"]) > 1:
                raise InterchangeError(
                    f"{where} accepts several options ({', '.join(map(str, record['accept']))}); synthstudio "
                    "labels are single-choice.",
                    position=position,
                )
            if not record["accept"]:
                continue
            label = record["accept"][0]
        elif record.get("label"):  # a binary task
            if answer != "accept":
                not_imported += 1
                continue
            label = record["label"]
        else:
            continue
        item.answers.append(
            Answer(
                label=checker.label(label, where=where, position=position),
                annotator=str(record.get("_annotator_id") or record.get("_session_id") or "")[:254],
            )
        )
    return list(items.values()), not_imported


def prodigy_lines(
    *, text: str, label_names: list[str], answers: list[Answer], prediction: Prediction | None, meta: dict
) -> list[dict]:
    """One choice task per human answer (none answered: one open task); the LLM block rides in `meta`."""
    base = {
        "text": text,
        "options": [{"id": name, "text": name} for name in label_names],
        "meta": {**meta, "llm": _llm_meta(prediction)},
    }
    if not answers:
        return [base]
    return [
        {
            **base,
            "accept": [answer.label],
            "answer": "accept",
            "_annotator_id": answer.annotator,
            "_session_id": answer.annotator,
        }
        for answer in answers
    ]


# ------------------------------------------------------------------------------------------------ doccano


def read_doccano(records: list, *, label_names: list[str]) -> list[Item]:
    checker = LabelChecker(label_names)
    items = []
    for position, value in enumerate(records, start=1):
        record = _record(value, position, "doccano")
        where = f"Line {position}" + (f" (id {record['id']})" if record.get("id") not in (None, "") else "")
        labels = record.get("label", record.get("labels", []))
        labels = [labels] if isinstance(labels, str) else labels
        if not isinstance(labels, list):
            raise InterchangeError(f"{where}: `label` is not a list of label names.", position=position)
        if len(labels) > 1:
            raise InterchangeError(
                f"{where} has several labels ({', '.join(map(str, labels))}); synthstudio labels are single-choice.",
                position=position,
            )
        item = Item(
            position=position,
            text=_text(record, "text", where, position),
            external_id=record.get("id"),
            fields={
                key: value
                for key, value in record.items()
                if key not in {"id", "text", "label", "labels", "synthstudio", "Comments"}
            },
        )
        _own_keys(record.get("synthstudio"), item)
        item.answers = [
            Answer(label=checker.label(label, where=where, position=position)) for label in labels
        ]
        items.append(item)
    return items


def doccano_line(*, sample_ref: int, text: str, label: str, meta: dict) -> dict:
    """doccano keeps one label list per text: the final label; the rest rides in `synthstudio`."""
    return {"id": sample_ref, "text": text, "label": [label] if label else [], "synthstudio": meta}


# ------------------------------------------------------------------------------------------------ Argilla


def annotator_uuid(name: str) -> str:
    return str(uuid.uuid5(ANNOTATOR_NAMESPACE, name or "unknown"))


def _json_metadata(metadata: dict, key: str) -> Any:
    value = metadata.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def read_argilla(
    records: list, *, label_names: list[str], text_field: str = "", question: str = ""
) -> list[Item]:
    """Items from `records.json`; the text field and label question default to the only (or `text` /
    `label`) ones, else the error lists what the records hold."""
    checker = LabelChecker(label_names)
    items = []
    for position, value in enumerate(records, start=1):
        record = _record(value, position, "argilla")
        where = f"Record {position}" + (f" (id {record['id']})" if record.get("id") not in (None, "") else "")
        fields = as_dict(record.get("fields"))
        key = text_field or (ARGILLA_TEXT_FIELD if ARGILLA_TEXT_FIELD in fields else "")
        if not key and len(fields) == 1:
            key = next(iter(fields))
        if not key:
            raise InterchangeError(
                f"{where} has no `text` field; its fields are: {', '.join(fields) or 'none'}. Choose the text field.",
                position=position,
            )
        metadata = as_dict(record.get("metadata"))
        item = Item(
            position=position,
            text=_text(fields, key, where, position),
            fields={name: text for name, text in fields.items() if name != key},
            external_id=record.get("id"),
        )
        _own_keys(
            {
                "split": metadata.get("split"),
                "weight": metadata.get("weight"),
                "fields": _json_metadata(metadata, "fields"),
                "provenance": _json_metadata(metadata, "provenance"),
            },
            item,
        )
        responses = as_dict(record.get("responses"))
        suggestions = as_dict(record.get("suggestions"))
        name = question or (ARGILLA_QUESTION if ARGILLA_QUESTION in {*responses, *suggestions} else "")
        if not name and len({*responses, *suggestions}) == 1:
            name = next(iter({*responses, *suggestions}))
        if not name and (responses or suggestions):
            raise InterchangeError(
                f"{where} answers several questions ({', '.join(sorted({*responses, *suggestions}))}); choose the "
                "label question.",
                position=position,
            )
        names = _json_metadata(metadata, "annotators") or {}
        for response in responses.get(name) or []:
            if not isinstance(response, dict) or response.get("value") in (None, ""):
                continue
            if response.get("status") not in (None, "submitted"):
                continue  # drafts and discarded answers are not labels
            user = str(response.get("user_id") or "")
            item.answers.append(
                Answer(
                    label=checker.label(response["value"], where=where, position=position),
                    annotator=str(names.get(user) or (f"argilla user {user}" if user else ""))[:254],
                )
            )
        suggestion = suggestions.get(name)
        if isinstance(suggestion, dict) and suggestion.get("value") not in (None, ""):
            label = checker.label(suggestion["value"], where=f"{where}, the suggestion", position=position)
            distribution = _json_metadata(metadata, "llm_distribution")
            item.predictions.append(
                Prediction(
                    label=label,
                    distribution=checker.distribution(distribution, where=where, position=position)
                    if distribution
                    else {},
                    confidence=score_or_none(suggestion.get("score")),
                    model_name=str(suggestion.get("agent") or "")[:200],
                    method=str(metadata.get("llm_method") or ""),
                )
            )
        items.append(item)
    return items


def argilla_record(
    *, sample_ref: int, text: str, answers: list[Answer], prediction: Prediction | None, meta: dict
) -> dict:
    """One record in the layout `rg.Dataset.to_disk` writes (Record.to_dict)."""
    metadata: dict[str, Any] = {
        "synthstudio_id": sample_ref,
        "split": meta.get("split", ""),
        "weight": meta.get("weight"),
        "label_source": meta.get("label_source", ""),
        "fields": json.dumps(meta.get("fields") or {}, ensure_ascii=False, sort_keys=True),
        "provenance": json.dumps(meta.get("provenance") or {}, ensure_ascii=False, sort_keys=True),
        "annotators": json.dumps(
            {annotator_uuid(a.annotator): a.annotator for a in answers}, ensure_ascii=False
        ),
    }
    suggestions = {}
    if prediction is not None:
        suggestions[ARGILLA_QUESTION] = {
            "value": prediction.label,
            "score": prediction.confidence,
            "agent": prediction.model_name,
        }
        metadata["llm_distribution"] = json.dumps(prediction.distribution, sort_keys=True)
        metadata["llm_method"] = prediction.method
    responses = {
        ARGILLA_QUESTION: [
            {"value": answer.label, "user_id": annotator_uuid(answer.annotator)} for answer in answers
        ]
    }
    return {
        "id": str(sample_ref),
        "fields": {ARGILLA_TEXT_FIELD: text},
        "metadata": metadata,
        "suggestions": suggestions,
        "responses": responses if answers else {},
        "vectors": {},
        "_server_id": None,
    }


def argilla_settings(*, label_names: list[str], guidelines: str) -> dict:
    """settings.json for `rg.Dataset.from_disk`: one text field, one single-label question."""
    return {
        "guidelines": guidelines or None,
        "allow_extra_metadata": True,
        "distribution": {"strategy": "overlap", "min_submitted": 1},
        "fields": [
            {
                "name": ARGILLA_TEXT_FIELD,
                "title": ARGILLA_TEXT_FIELD,
                "required": True,
                "settings": {"type": "text", "use_markdown": False},
            }
        ],
        "questions": [
            {
                "name": ARGILLA_QUESTION,
                "title": ARGILLA_QUESTION,
                "required": True,
                "settings": {
                    "type": "label_selection",
                    "options": [{"value": name, "text": name, "description": None} for name in label_names],
                    "visible_options": None,
                },
            }
        ],
        "metadata": [],
        "vectors": [],
        "mapping": None,
    }
