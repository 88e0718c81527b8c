"""The pure curation filters on hand-checkable cases."""

import numpy as np
import pytest

from evaluation.curation.filters import (
    CurationItem,
    FilterSettings,
    curate,
    exact_duplicates,
    near_duplicates,
    stratified_split,
)


def test_exact_duplicates_keep_the_first_and_ignore_case_and_spacing():
    assert exact_duplicates(["A cat.", "a  cat.", "A dog.", "A cat."]).tolist() == [False, True, False, True]


def test_near_duplicates_remove_later_items_close_to_a_kept_one():
    vectors = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.05, 0.99], [0.7, 0.7]])
    assert near_duplicates(vectors, 0.98).tolist() == [False, True, False, True, False]


def test_a_chain_of_near_duplicates_keeps_an_item_whose_only_match_was_removed():
    # b is close to a and to c; c is not close to a: a kept, b removed, c kept (its only match is gone)
    angle = np.deg2rad([0, 10, 20])
    vectors = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    threshold = float(np.cos(np.deg2rad(12)))
    assert near_duplicates(vectors, threshold).tolist() == [False, True, False]


def test_the_judge_threshold_keeps_unscored_items():
    items = [
        CurationItem("a", "x", judge_score=4.0),
        CurationItem("b", "x", judge_score=2.0),
        CurationItem("c", "x"),
    ]
    result = curate(items, FilterSettings(min_judge_score=3.0))
    assert result.keep.tolist() == [True, False, True]
    assert result.counts["judge_score"] == 1


def test_confidence_and_consistency_spare_human_verified_items():
    items = [
        CurationItem("a", "x", confidence=0.9, llm_labels=frozenset({"x"})),
        CurationItem("b", "x", confidence=0.4, llm_labels=frozenset({"x"})),
        CurationItem("c", "x", confidence=0.9, llm_labels=frozenset({"x", "y"})),
        CurationItem("d", "y", human_verified=True, confidence=0.1, llm_labels=frozenset({"x", "y"})),
    ]
    result = curate(items, FilterSettings(min_confidence=0.5, require_consistency=True))
    assert result.removed_by["confidence"].tolist() == [False, True, False, False]
    assert result.removed_by["consistency"].tolist() == [False, False, True, False]
    assert result.keep.tolist() == [True, False, False, True]


def test_flags_length_and_format_rules_each_count_what_they_remove():
    items = [
        CurationItem("short", "x"),
        CurationItem("a perfectly fine sentence.", "x"),
        CurationItem("a flagged but fine sentence.", "x", flagged=True),
        CurationItem("contains http://spam.example", "x"),
        CurationItem("no full stop at the end", "x"),
    ]
    settings = FilterSettings(
        min_chars=10, must_match=r"[.!?]$", must_not_match=r"https?://", drop_flagged=True
    )
    result = curate(items, settings)
    assert result.counts == {
        "unlabelled": 0,
        "exact_duplicates": 0,
        "near_duplicates": 0,
        "judge_score": 0,
        "confidence": 0,
        "consistency": 0,
        "flagged": 1,
        "excluded": 0,
        "length": 1,
        "format": 3,
    }
    assert result.keep.tolist() == [False, True, False, False, False]


def test_items_without_a_final_label_are_never_kept():
    result = curate([CurationItem("a", ""), CurationItem("b", "x")], FilterSettings())
    assert result.keep.tolist() == [False, True]


def test_settings_round_trip_through_a_dict_and_ignore_unknown_keys():
    settings = FilterSettings(near_duplicate_threshold=0.9, max_chars=200)
    assert FilterSettings.from_dict({**settings.as_dict(), "stale_key": 1}) == settings


def test_an_invalid_regex_is_reported():
    with pytest.raises(Exception, match="unterminated|missing"):
        curate([CurationItem("a", "x")], FilterSettings(must_match="("))


def test_the_stratified_split_divides_each_label_in_the_fractions():
    labels = ["pos"] * 10 + ["neg"] * 20
    split = stratified_split(labels, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=1)
    pos = [s for s, label in zip(split, labels, strict=True) if label == "pos"]
    neg = [s for s, label in zip(split, labels, strict=True) if label == "neg"]
    assert (pos.count("train"), pos.count("validation"), pos.count("test")) == (8, 1, 1)
    assert (neg.count("train"), neg.count("validation"), neg.count("test")) == (16, 2, 2)
