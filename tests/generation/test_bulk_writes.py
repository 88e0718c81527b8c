"""generation.bulk_writes.insert_rows: the ORM-built INSERT run with executemany writes what bulk_create
would (JSON, auto_now_add), skips conflicting rows when asked, and keeps one statement per model."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from generation.bulk_writes import _insert_statement, insert_rows
from generation.models import LLMCall

pytestmark = pytest.mark.django_db


def call(key: str, content: str) -> LLMCall:
    return LLMCall(
        key=key,
        base_url="http://x/v1",
        model="m",
        request={"messages": [{"role": "user", "content": 'é "q"'}], "params": {"seed": 1}},
        response={"choices": [{"message": {"content": content}}]},
        prompt_tokens=3,
        cost=0.5,
    )


def test_rows_are_written_as_bulk_create_would_write_them():
    insert_rows(LLMCall, [call("a", "one"), call("b", "two")])
    stored = {row.key: row for row in LLMCall.objects.all()}
    assert set(stored) == {"a", "b"}
    assert stored["a"].request["messages"][0]["content"] == 'é "q"'
    assert stored["b"].response["choices"][0]["message"]["content"] == "two"
    assert stored["a"].created_at is not None and stored["a"].cost == 0.5


def test_conflicting_rows_are_skipped_only_when_asked():
    insert_rows(LLMCall, [call("a", "first")])
    insert_rows(LLMCall, [call("a", "second"), call("c", "third")], ignore_conflicts=True)
    assert dict(LLMCall.objects.values_list("key", "response__choices__0__message__content")) == {
        "a": "first",
        "c": "third",
    }
    with pytest.raises(IntegrityError):
        insert_rows(LLMCall, [call("a", "again")])


def test_the_statement_is_built_once_per_model_and_conflict_handling():
    _insert_statement.cache_clear()
    insert_rows(LLMCall, [call("a", "x")], ignore_conflicts=True)
    insert_rows(LLMCall, [call("b", "y")], ignore_conflicts=True)
    insert_rows(LLMCall, [call("c", "z")])
    assert _insert_statement.cache_info().misses == 2 and _insert_statement.cache_info().hits == 1
