"""A small JSON-schema validator for structured model output (no Django).

Covers what generation configs use: type (incl. lists of types), properties, required,
additionalProperties (false or a schema), enum, const, items, minItems/maxItems, minLength/maxLength,
minimum/maximum. Unknown keywords are ignored, as JSON Schema says. Returns a list of problems, each naming
the path ("$.label: 'maybe' is not one of ['negative', 'positive']"); an empty list means valid.
"""

from __future__ import annotations

from typing import Any

TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def validate(value: Any, schema: dict | None, path: str = "$") -> list[str]:
    if not schema:
        return []
    problems: list[str] = []
    wanted = schema.get("type")
    if wanted:
        types = wanted if isinstance(wanted, list) else [wanted]
        if not any(TYPE_CHECKS.get(t, lambda v: True)(value) for t in types):
            return [f"{path}: expected {' or '.join(types)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{path}: {value!r} is not {schema['const']!r}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{path}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']} characters")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: above {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                problems.append(f"{path}: missing required property {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                problems.extend(validate(item, properties[name], f"{path}.{name}"))
            elif extra is False:
                problems.append(f"{path}: unexpected property {name!r}")
            elif isinstance(extra, dict):
                problems.extend(validate(item, extra, f"{path}.{name}"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: more than {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                problems.extend(validate(item, schema["items"], f"{path}[{index}]"))
    return problems


def check_schema(schema: Any) -> list[str]:
    """Problems with a schema a lead typed (so a bad schema is rejected at save, not at run time)."""
    if not isinstance(schema, dict):
        return ["The schema must be a JSON object."]
    problems = []
    kind = schema.get("type")
    known = set(TYPE_CHECKS)
    for t in kind if isinstance(kind, list) else [kind] if kind else []:
        if t not in known:
            problems.append(f"Unknown type {t!r}.")
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):
            problems.append(f"Property {name!r} must be described by an object.")
        else:
            problems.extend(check_schema(sub))
    for name in schema.get("required") or []:
        if name not in (schema.get("properties") or {}):
            problems.append(f"Required property {name!r} is not among the properties.")
    return problems
