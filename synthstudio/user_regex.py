"""Regular expressions typed by users, compiled for RE2 (no Django).

Python's `re` backtracks: `(a+)+$` against forty 'a's and a 'b' takes longer than the age of the universe,
and while it runs it holds a web or Celery worker. RE2 (Cox, "Regular Expression Matching Can Be Simple And
Fast", 2007) compiles a pattern to an automaton and matches in time linear in the text, whatever the
pattern. The price is syntax RE2 cannot do in linear time — backreferences, lookarounds, atomic groups —
which we refuse with a sentence a form can show.

Every place that runs a pattern a user supplied compiles it with `compile_user_pattern`: a length cap and a
memory budget bound the compile step, RE2 bounds the match. Differences from `re` worth telling users:
`\\w`, `\\d` and `\\b` are ASCII-only (`\\pL` is any letter), `\\Z` is written `\\z`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import re2

MAX_PATTERN_CHARS = 500
# RE2's compiled program and DFA cache share this budget; a pattern needing more is refused at compile time
# and a DFA that fills it falls back to the (still linear) NFA. The binding keeps up to 128 compiled
# patterns per process, so the worst case a stream of distinct patterns can hold is 128 times this.
MAX_MEMORY_BYTES = 4 << 20

_OPTIONS = re2.Options()
_OPTIONS.max_mem = MAX_MEMORY_BYTES
_OPTIONS.log_errors = False  # a refused user pattern is a form error, not a line on the server's stderr
_OPTIONS.never_capture = True  # callers only ask "does it match": groups would force the slower engines

_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")
_LOOKAROUND = re.compile(r"\(\?<?[=!]")


class UserPatternError(ValueError):
    """A pattern we will not run; `str(error)` is a sentence to show next to the field."""


@dataclass(frozen=True)
class UserPattern:
    """A compiled user pattern; `search` says whether it matches anywhere in a text, in linear time."""

    pattern: str
    _compiled: Any = field(repr=False, compare=False)

    def search(self, text: str) -> bool:
        # bytes skip the binding's offset bookkeeping (we need no spans) and never fail on a lone surrogate
        return self._compiled.search(text.encode("utf-8", "surrogatepass")) is not None


def compile_user_pattern(pattern: str) -> UserPattern:
    """Compile `pattern` for RE2 or raise UserPatternError saying what to change."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise UserPatternError(
            f"The pattern has {len(pattern)} characters; the limit is {MAX_PATTERN_CHARS}."
        )
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as error:
        raise UserPatternError(_explain(pattern, _message(error))) from None
    return UserPattern(pattern, compiled)


def _message(error: Exception) -> str:
    detail = error.args[0] if error.args else ""
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)


def _explain(pattern: str, message: str) -> str:
    """RE2's terse error turned into a sentence naming the unsupported construct and what to do instead."""
    engine = "patterns run on RE2, which matches in linear time"
    if _BACKREFERENCE.search(pattern) and ("escape sequence" in message or "(?P" in message):
        return f"Backreferences (\\1, (?P=name)) are not supported: {engine}."
    if _LOOKAROUND.search(pattern) and "perl operator" in message:
        return f"Lookahead and lookbehind ((?=…), (?!…), (?<=…), (?<!…)) are not supported: {engine}."
    if "(?>" in message:
        return f"Atomic groups (?>…) are not supported: {engine}."
    if message == "invalid escape sequence: \\Z":
        return "Write \\z for the end of the text (RE2 has no \\Z)."
    if message.startswith("invalid repetition size"):
        return "Counted repetition {n,m} allows at most 1000 (and nested counts multiply)."
    if message.startswith("pattern too large"):
        return (
            f"The pattern is too large once compiled (over {MAX_MEMORY_BYTES >> 20} MB); "
            "use fewer or smaller counted repetitions."
        )
    return f"Not a valid regular expression: {message}."
