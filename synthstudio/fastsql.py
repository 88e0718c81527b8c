"""Hand-written SQL that still yields model instances, for the few paths where building the query costs more
than running it.

The review queue answers, claims and renders an item on every keystroke-driven submit. Compiled by the ORM, a
select_related lookup there costs about 1.1 ms of CPU on PostgreSQL and the query itself about 0.1 ms
(measured on the 2-core machine; see annotation/review_sql.py). These helpers run plain SQL with the same value
conversions the ORM applies (SQLite text dates, JSON, booleans) and the same insert preparation (auto_now,
defaults, JSON adaptation), so callers keep working with ordinary model instances.

Everything else in the project uses the ORM; reach for this module only with a measurement in hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

from django.db import connection, models


def columns(model: type[models.Model], alias: str) -> str:
    """The model's concrete columns, qualified by `alias`, in the order `instances` expects them."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields)


def width(model: type[models.Model]) -> int:
    return len(model._meta.concrete_fields)


@cache
def _converters(model: type[models.Model], vendor: str) -> tuple[tuple[int, tuple, object], ...]:
    """Per column: the backend's and the field's converters, as the ORM's compiler collects them."""
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(model._meta.db_table)
        converters = tuple(connection.ops.get_db_converters(column) + column.get_db_converters(connection))
        if converters:
            found.append((index, converters, column))
    return tuple(found)


@cache
def _attnames(model: type[models.Model]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields)


def instance(model: type[models.Model], values: Sequence) -> models.Model | None:
    """A model instance from one model's slice of a row (None when the slice is all NULL: an outer join missed)."""
    if values[0] is None:
        return None
    values = list(values)
    for index, converters, column in _converters(model, connection.vendor):
        value = values[index]
        for converter in converters:
            value = converter(value, column, connection)
        values[index] = value
    return model.from_db(connection.alias, _attnames(model), values)


def instances(row: Sequence, *models_in_order: type[models.Model]) -> list[models.Model | None]:
    """Split a row made of `columns(A, ..), columns(B, ..)` back into instances of A, B, ..."""
    found, start = [], 0
    for model in models_in_order:
        end = start + width(model)
        found.append(instance(model, row[start:end]))
        start = end
    return found


def fetchone(sql: str, params: Sequence) -> tuple | None:
    return _run(sql, params, lambda cursor: cursor.fetchone())


def fetchall(sql: str, params: Sequence) -> list[tuple]:
    return _run(sql, params, lambda cursor: cursor.fetchall())


def execute(sql: str, params: Sequence) -> int:
    """Run a statement; returns the number of rows it changed."""
    return _run(sql, params, lambda cursor: cursor.rowcount)


def _run(sql: str, params: Sequence, result):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return result(cursor)


def timestamp(value: datetime):
    """A datetime as the database stores it (SQLite keeps text without a zone; PostgreSQL takes it as is)."""
    return connection.ops.adapt_datetimefield_value(value)


@cache
def _insert_sql(model: type[models.Model], vendor: str) -> tuple[str, tuple[models.Field, ...]]:
    quote = connection.ops.quote_name
    fields = tuple(field for field in model._meta.concrete_fields if not field.primary_key)
    names = ", ".join(quote(field.column) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES ({marks})", fields


def insert_statement(obj: models.Model) -> tuple[str, list]:
    """The INSERT of one instance (without RETURNING) and its values, prepared the way Model.save() would
    (pre_save hooks, defaults, adaptation) — to embed in a larger statement."""
    sql, fields = _insert_sql(type(obj), connection.vendor)
    return sql, [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]


def insert(obj: models.Model) -> models.Model:
    """INSERT one instance the way Model.save() would and set its pk."""
    sql, values = insert_statement(obj)
    obj.pk = fetchone(f"{sql} RETURNING {connection.ops.quote_name(obj._meta.pk.column)}", values)[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj
