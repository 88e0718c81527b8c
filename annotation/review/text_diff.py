"""A word-level diff of a sample's original text and an annotator's correction, for the lead's corrections
page. Pure Python (no Django): the standard library's difflib.SequenceMatcher on word, space and punctuation
tokens, so the segments joined back give both texts exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

TOKEN = re.compile(r"\s+|\w+|[^\w\s]")

EQUAL, DELETED, INSERTED = "equal", "deleted", "inserted"


@dataclass(frozen=True)
class DiffSegment:
    kind: str  # EQUAL, DELETED (only in the original) or INSERTED (only in the correction)
    text: str


def text_diff(original: str, corrected: str) -> list[DiffSegment]:
    """The segments that turn `original` into `corrected`: equal runs once, a replacement as its deleted
    then its inserted tokens. Joining the EQUAL+DELETED texts gives `original`, EQUAL+INSERTED `corrected`."""
    before, after = TOKEN.findall(original), TOKEN.findall(corrected)
    segments: list[DiffSegment] = []

    def add(kind: str, tokens: list[str]) -> None:
        if not tokens:
            return
        text = "".join(tokens)
        if segments and segments[-1].kind == kind:
            segments[-1] = DiffSegment(kind, segments[-1].text + text)
        else:
            segments.append(DiffSegment(kind, text))

    matcher = SequenceMatcher(None, before, after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            add(EQUAL, before[i1:i2])
        else:
            add(DELETED, before[i1:i2])
            add(INSERTED, after[j1:j2])
    return segments
