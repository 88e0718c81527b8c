"""Prompt building (no Django): p = E(e_task, e_condition, e_demo), survey §3.1.1 (Long et al. 2024).

Templates use ``{{ name }}`` placeholders and nothing else: no expressions, filters, attribute access or
tags, so a lead cannot execute code through a template. A placeholder that is neither built in
(``BUILTIN_PLACEHOLDERS``) nor a condition dimension is rejected, by name.

Multi-step generation (survey §3.1.2) is described here too: which messages each step sends, given the
earlier steps' outputs, and how the outputs of all steps become one sample.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ANY_BRACES = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)

BUILTIN_PLACEHOLDERS = {
    "role": 'The role preamble ("Suppose you are …").',
    "task": "The codebook's task description.",
    "labels": "The codebook's labels with their descriptions, one per line.",
    "guidelines": "The codebook's guidelines.",
    "conditions": "This sample's conditions as '- name: value' lines.",
    "demos": "The in-context demos, numbered.",
    "random_words": "Random words to include (empty when not configured).",
    "format": "Format instructions derived from the JSON schema.",
    "label": "This sample's label condition (empty when not conditioned on label).",
}

DEFAULT_TEMPLATE = """{{ role }}

Task: {{ task }}

Labels:
{{ labels }}

Write one new, realistic example for this task with these properties:
{{ conditions }}
{{ random_words }}
Examples written by people:
{{ demos }}

{{ format }}"""

KINDS = ("single", "input_then_label", "instruction_then_response", "dialogue")


class TemplateError(ValueError):
    pass


def placeholders_in(template: str) -> list[str]:
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def template_problems(template: str, dimension_names: Iterable[str]) -> list[str]:
    """Problems that make a template unusable, each naming the offending placeholder."""
    problems = []
    allowed = set(BUILTIN_PLACEHOLDERS) | set(dimension_names)
    for match in ANY_BRACES.finditer(template):
        inner = match.group(1).strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", inner):
            problems.append(
                f"{{{{{match.group(1)}}}}} is not a placeholder: use {{{{ name }}}} with a plain name."
            )
        elif inner not in allowed:
            problems.append(
                f"Unknown placeholder {{{{ {inner} }}}}: use one of {', '.join(sorted(allowed))}."
            )
    if "{%" in template:
        problems.append("Template tags ({% … %}) are not allowed; use {{ name }} placeholders only.")
    return problems


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute placeholders; an unknown one raises TemplateError naming it. Runs of blank lines left by
    empty values are collapsed."""

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise TemplateError(f"Unknown placeholder {{{{ {name} }}}}")
        return str(values[name])

    text = PLACEHOLDER.sub(substitute, template)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def format_labels(labels: Sequence[tuple[str, str]]) -> str:
    return "\n".join(
        f"- {name}: {description}" if description else f"- {name}" for name, description in labels
    )


def format_conditions(conditions: Mapping[str, str]) -> str:
    return "\n".join(f"- {name}: {value}" for name, value in conditions.items())


def format_demos(demos: Sequence[Mapping[str, Any]]) -> str:
    if not demos:
        return "(none)"
    lines = []
    for number, demo in enumerate(demos, start=1):
        label = f" (label: {demo['label']})" if demo.get("label") else ""
        lines.append(f"{number}. {demo['text']}{label}")
    return "\n".join(lines)


def format_random_words(words: Sequence[str]) -> str:
    return f"Use these words somewhere in the text: {', '.join(words)}." if words else ""


def format_instructions(schema: Mapping[str, Any] | None) -> str:
    if not schema or not schema.get("properties"):
        return "Answer with the text only."
    parts = []
    for name, sub in schema["properties"].items():
        hint = (
            f"one of {', '.join(map(str, sub['enum']))}"
            if sub.get("enum")
            else sub.get("description") or sub.get("type", "value")
        )
        parts.append(f'"{name}": {hint}')
    return "Answer with one JSON object and nothing else: {" + ", ".join(parts) + "}."


def default_schema(kind: str, labels: Sequence[str]) -> dict:
    """The structured output a kind's first step asks for."""
    if kind == "single":
        label = {"type": "string", "enum": list(labels)} if labels else {"type": "string"}
        return {
            "type": "object",
            "properties": {"text": {"type": "string"}, "label": label},
            "required": ["text", "label"],
        }
    if kind == "instruction_then_response":
        return {
            "type": "object",
            "properties": {"instruction": {"type": "string"}},
            "required": ["instruction"],
        }
    return {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def label_schema(labels: Sequence[str]) -> dict:
    label = {"type": "string", "enum": list(labels)} if labels else {"type": "string"}
    return {"type": "object", "properties": {"label": label}, "required": ["label"]}


def first_messages(template: str, values: Mapping[str, str], role_preamble: str = "") -> list[dict]:
    messages = [{"role": "system", "content": role_preamble}] if role_preamble.strip() else []
    messages.append({"role": "user", "content": render(template, values)})
    return messages


def step_count(kind: str, dialogue_turns: int = 4) -> int:
    if kind == "dialogue":
        return max(2, dialogue_turns)
    return 1 if kind == "single" else 2


def dialogue_role(step: int) -> str:
    """Turn 0 is the user's, then assistant and user alternate."""
    return "user" if step % 2 == 0 else "assistant"


def step_text(kind: str, step: int, output: Any) -> str:
    """The text an earlier step produced (parsed JSON or plain content)."""
    if isinstance(output, Mapping):
        for name in ("text", "instruction", "response", "content"):
            if isinstance(output.get(name), str):
                return output[name]
        strings = [value for value in output.values() if isinstance(value, str)]
        return strings[0] if strings else json.dumps(output)
    return str(output or "").strip()


def later_step(
    kind: str, step: int, outputs: Sequence[Any], *, values: Mapping[str, str], labels: Sequence[str]
) -> tuple[list[dict], dict | None]:
    """(messages, json_schema or None) for step >= 1, seeing every earlier output."""
    if kind == "input_then_label":
        text = step_text(kind, 0, outputs[0])
        prompt = (
            f"Task: {values.get('task', '')}\n\nLabels:\n{values.get('labels', '')}\n\nText:\n{text}\n\n"
            "Which label fits the text? " + format_instructions(label_schema(labels))
        )
        return [{"role": "user", "content": prompt}], label_schema(labels)
    if kind == "instruction_then_response":
        return [{"role": "user", "content": step_text(kind, 0, outputs[0])}], None
    if kind == "dialogue":
        role = dialogue_role(step)
        transcript = "\n".join(
            f"{dialogue_role(index).capitalize()}: {step_text(kind, index, output)}"
            for index, output in enumerate(outputs)
        )
        conditions = values.get("conditions", "")
        prompt = (
            f"You are writing a conversation between a user and an assistant.\nTask: {values.get('task', '')}\n"
            + (f"Properties of the conversation:\n{conditions}\n" if conditions else "")
            + f"\nConversation so far:\n{transcript}\n\nWrite the next {role} turn only, as plain text."
        )
        return [{"role": "user", "content": prompt}], None
    raise ValueError(f"{kind!r} has no step {step}")


def sample_from_outputs(kind: str, outputs: Sequence[Any], conditions: Mapping[str, str]) -> dict:
    """{text, label, fields} of the sample that the outputs of all steps make."""
    if kind == "dialogue":
        turns = [
            {"role": dialogue_role(i), "content": step_text(kind, i, out)} for i, out in enumerate(outputs)
        ]
        text = "\n".join(f"{turn['role'].capitalize()}: {turn['content']}" for turn in turns)
        return {"text": text, "label": conditions.get("label", ""), "fields": {"turns": turns}}
    if kind == "instruction_then_response":
        instruction, response = step_text(kind, 0, outputs[0]), step_text(kind, 1, outputs[1])
        return {
            "text": instruction,
            "label": conditions.get("label", ""),
            "fields": {"instruction": instruction, "response": response},
        }
    first = outputs[0]
    text = step_text(kind, 0, first)
    label = ""
    if kind == "input_then_label" and len(outputs) > 1 and isinstance(outputs[1], Mapping):
        label = str(outputs[1].get("label") or "")
    elif isinstance(first, Mapping):
        label = str(first.get("label") or "")
    extra = (
        {k: v for k, v in first.items() if k not in {"text", "label"}} if isinstance(first, Mapping) else {}
    )
    return {"text": text, "label": label or conditions.get("label", ""), "fields": extra}
