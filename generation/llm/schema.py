"""JSON-schema validation of structured model output and of the schemas leads type (no Django).

Both run on `jsonschema`'s Draft 2020-12 validator (the full draft: $ref/$defs, anyOf/oneOf, patterns,
formats as annotations, ...). What this module adds is the error text: every problem names where it is, as a
JSONPath-like location ("$.items[2].label: 'x' is not one of ['a', 'b']"), so a lead sees which field of
which item the model got wrong. `validate` returns the problems in document order; an empty list (also for
no schema) means valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}
KNOWN_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def json_path(parts: Iterable[str | int], root: str = "$") -> str:
    """["items", 2, "label"] → "$.items[2].label"."""
    path = root
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _json_type(value: Any) -> str:
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _problem(error: ValidationError) -> str:
    """One line per error, with messages for the common keywords that read better than jsonschema's own."""
    where = json_path(error.absolute_path)
    keyword = error.validator
    if keyword == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"{where}: expected {' or '.join(wanted)}, got {_json_type(error.instance)}"
    if keyword == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return f"{where}: missing required property {', '.join(repr(name) for name in missing)}"
    if keyword == "additionalProperties" and error.validator_value is False:
        allowed = set(error.schema.get("properties") or {})
        extra = [name for name in error.instance if name not in allowed]
        return f"{where}: unexpected property {', '.join(repr(name) for name in extra)}"
    return f"{where}: {error.message}"


def validate(value: Any, schema: dict | None) -> list[str]:
    """Problems of `value` against `schema` (Draft 2020-12), each prefixed by its location."""
    if not schema:
        return []
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda error: list(map(str, error.absolute_path)))
    return [_problem(error) for error in errors]


def check_schema(schema: Any) -> list[str]:
    """Problems with a schema a lead typed (so a bad schema is rejected at save, not at run time): the
    Draft 2020-12 meta-schema, plus a required property missing from `properties` (valid JSON Schema, but
    with additionalProperties false no answer could ever pass, and otherwise almost always a typo)."""
    if not isinstance(schema, dict):
        return ["The schema must be a JSON object."]
    problems = []
    for error in sorted(
        Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(schema),
        key=lambda error: list(map(str, error.absolute_path)),
    ):
        path = list(error.absolute_path)
        if path and path[-1] == "type" or (len(path) > 1 and path[-2] == "type"):
            problems.append(
                f"Unknown type {error.instance!r} at {json_path(path)}; use one of {list(KNOWN_TYPES)}."
            )
        else:
            problems.append(f"{json_path(path)}: {error.message}")
    problems.extend(_required_not_in_properties(schema, "$"))
    return list(dict.fromkeys(problems))  # the meta-schema's vocabularies report some errors once each


def _required_not_in_properties(schema: Any, path: str) -> list[str]:
    if not isinstance(schema, dict):
        return []
    problems = []
    properties = schema.get("properties") or {}
    if isinstance(schema.get("required"), list) and isinstance(properties, dict):
        for name in schema["required"]:
            if name not in properties:
                problems.append(f"Required property {name!r} is not among the properties ({path}).")
    for name, sub in properties.items() if isinstance(properties, dict) else []:
        problems.extend(_required_not_in_properties(sub, f"{path}.properties.{name}"))
    if isinstance(schema.get("items"), dict):
        problems.extend(_required_not_in_properties(schema["items"], f"{path}.items"))
    return problems
