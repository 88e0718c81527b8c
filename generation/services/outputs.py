"""The outputs viewer's filters: the condition names a project's configs use, and items by condition value."""

from __future__ import annotations

from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform

from generation.models import GenerationConfig, GenerationItem
from synthstudio.models import Project


def condition_names(*, project: Project) -> set[str]:
    """The condition names the project's generation configs (every version) put on their items: the
    dimensions, plus 'label' where a config conditions on the label (see generation_context)."""
    names: set[str] = set()
    for dimensions, on_label in GenerationConfig.objects.filter(project=project).values_list(
        "dimensions", "condition_on_label"
    ):
        names.update(str(d["name"]) for d in dimensions or [] if isinstance(d, dict) and d.get("name"))
        if on_label:
            names.add("label")
    return names


def items_with_condition(
    items: QuerySet[GenerationItem], *, name: str, value: str
) -> QuerySet[GenerationItem]:
    """Items whose condition `name` equals `value`. The key is one explicit JSON key transform, so a name
    can never be read as a lookup (`conditions__contains`, `…__regex`) the way a `conditions__{name}`
    keyword would."""
    return items.alias(condition_value=KeyTransform(name, "conditions")).filter(condition_value=value)
