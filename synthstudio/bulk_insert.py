"""Fast multi-row INSERT for large imports: one executemany per batch, no per-value ORM compilation.

bulk_create compiles every value through Django's SQL compiler (~10 µs each) and, on SQLite, splits
batches at 999 parameters; for a 100,000-row import that is most of the time. Here the caller gives values
for the fields it knows (already in database form) and every other concrete field gets its model default,
prepared once per call; a field added later with a default keeps working.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connections, models
from django.utils import timezone

MAX_PARAMETERS_PER_STATEMENT = 60_000


def json_value(value: Any) -> str:
    """A JSONField value in database form (what JSONField.get_db_prep_save produces)."""
    return json.dumps(value)


def insert_rows(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    using: str = "default",
) -> int:
    """INSERT rows (tuples in `columns` order, database-ready values) into model's table; returns the count.

    `columns` are field attnames (e.g. "sample_id"). Auto-now(-add) datetimes not given are set to now.
    """
    connection = connections[using]
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    by_attname = {field.attname: field for field in fields}
    unknown = [name for name in columns if name not in by_attname]
    if unknown:
        raise ValueError(f"{model.__name__} has no fields {unknown}")
    template = model()
    now = timezone.now()
    extra_columns, extra_values = [], []
    for field in fields:
        if field.attname in columns:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now if isinstance(field, models.DateTimeField) else now.date()
        else:
            value = getattr(template, field.attname)
        extra_columns.append(field.attname)
        extra_values.append(field.get_db_prep_save(value, connection))
    all_columns = [*columns, *extra_columns]
    quote = connection.ops.quote_name
    head = "INSERT INTO {} ({}) VALUES ".format(
        quote(model._meta.db_table), ", ".join(quote(by_attname[name].column) for name in all_columns)
    )
    placeholders = "({})".format(", ".join(["%s"] * len(all_columns)))
    extra = tuple(extra_values)
    params = [(*row, *extra) for row in rows]
    if not params:
        return 0
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.executemany(head + placeholders, params)  # in-process: one prepared statement is fastest
        else:
            # A server round trip per row is what makes executemany slow on PostgreSQL: send many rows per
            # statement instead, within the protocol's 65,535 parameters.
            per_statement = max(1, MAX_PARAMETERS_PER_STATEMENT // len(all_columns))
            for start in range(0, len(params), per_statement):
                chunk = params[start : start + per_statement]
                cursor.execute(
                    head + ", ".join([placeholders] * len(chunk)), [value for row in chunk for value in row]
                )
    return len(params)


def ids_by_key(queryset: models.QuerySet, key: str, keys: Iterable[Any]) -> Mapping[Any, int]:
    """{key value: pk} for rows just inserted, looked up by a key unique among them (e.g. text_hash)."""
    return dict(queryset.filter(**{f"{key}__in": list(keys)}).values_list(key, "pk"))
