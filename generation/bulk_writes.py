"""Row inserts for the result writer of LLM batches (call cache rows, item–sample links): one statement built
once, run with executemany.

Why not QuerySet.bulk_create: it compiles the INSERT anew for every batch, value by value (a placeholder, the
field's preparation and the SQL assembly for every field of every row). In the writer thread of a run at
several hundred results a second that was, after the answers' own JSON, the largest CPU cost, and it shares
the GIL with the event loop sending the requests (issue 16's profile: the three bulk_creates of a batch took
0.9 ms per result, half of it compiling). Here the statement comes from the ORM's own compiler (an
InsertQuery for one row: the backend's quoting and its way of ignoring conflicts), built once per model,
field list, conflict handling and database backend; each row's values go through each field's ``pre_save``
(``auto_now_add``) and ``get_db_prep_save`` (JSON encoding, datetimes), as bulk_create does. No primary keys
come back: use it where none is needed."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import connections, router
from django.db.models import Model
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery


@functools.cache
def _insert_statement(
    model: type[Model], ignore_conflicts: bool, alias: str, vendor: str
) -> tuple[list, str]:
    """(fields, SQL with one row of placeholders) for inserting `model` rows without their primary key."""
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    query = InsertQuery(model, on_conflict=OnConflict.IGNORE if ignore_conflicts else None)
    query.insert_values(fields, [model()], raw=False)
    statements = query.get_compiler(using=alias).as_sql()
    if len(statements) != 1:
        raise ValueError(f"Expected one INSERT statement for {model.__name__}, got {len(statements)}.")
    return fields, statements[0][0]


def insert_rows(model: type[Model], objs: Sequence[Model], *, ignore_conflicts: bool = False) -> None:
    """Insert `objs` (unsaved, no primary key set) in one executemany; rows that would violate a unique
    constraint are skipped when `ignore_conflicts`. The objects' primary keys stay unset."""
    if not objs:
        return
    alias = router.db_for_write(model)
    connection = connections[alias]
    fields, sql = _insert_statement(model, ignore_conflicts, alias, connection.vendor)
    rows: list[list[Any]] = [
        [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields] for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
