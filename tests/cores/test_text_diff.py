"""The word-level diff behind the lead's text corrections page (annotation.review.text_diff, pure Python)."""

from __future__ import annotations

import pytest

from annotation.review.text_diff import DELETED, EQUAL, INSERTED, DiffSegment, text_diff


def joined(segments: list[DiffSegment], *kinds: str) -> str:
    return "".join(segment.text for segment in segments if segment.kind in kinds)


def test_a_typo_fix_is_one_deleted_and_one_inserted_word():
    assert text_diff("a delight from start to finsh.", "a delight from start to finish.") == [
        DiffSegment(EQUAL, "a delight from start to "),
        DiffSegment(DELETED, "finsh"),
        DiffSegment(INSERTED, "finish"),
        DiffSegment(EQUAL, "."),
    ]


def test_added_and_removed_words_keep_their_spaces():
    assert text_diff("too long", "far too long") == [
        DiffSegment(INSERTED, "far "),
        DiffSegment(EQUAL, "too long"),
    ]
    assert text_diff("far too long", "too long") == [
        DiffSegment(DELETED, "far "),
        DiffSegment(EQUAL, "too long"),
    ]


@pytest.mark.parametrize(
    ("original", "corrected"),
    [
        ("", "new text"),
        ("old text", ""),
        ("same", "same"),
        ('Dull, "predictable"\nand long;  really.', 'Dull and "predictable",\nreally.'),
        ("Ünïcödé — fine ✓ <b>film</b>", "Ünïcödé — a fine ✓ <i>film</i>"),
    ],
)
def test_the_segments_give_back_both_texts_exactly(original, corrected):
    segments = text_diff(original, corrected)
    assert joined(segments, EQUAL, DELETED) == original
    assert joined(segments, EQUAL, INSERTED) == corrected
    assert all(segment.text for segment in segments)
    # neighbours never share a kind: runs are merged
    assert all(a.kind != b.kind for a, b in zip(segments, segments[1:], strict=False))
