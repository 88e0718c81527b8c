"""The review queue's plain-Python figures, against hand-checked cases."""

from __future__ import annotations

from datetime import date

from annotation.review import stats as review_stats


def test_it_mixes_gold_in_every_tenth_item_at_rate_one_tenth():
    due = [n for n in range(30) if review_stats.gold_due(n, 0.1)]
    assert due == [9, 19, 29]


def test_it_never_mixes_gold_at_rate_zero_and_always_at_rate_one():
    assert not any(review_stats.gold_due(n, 0.0) for n in range(20))
    assert all(review_stats.gold_due(n, 1.0) for n in range(20))


def test_it_bounds_client_time_by_server_time_plus_slack():
    assert review_stats.bounded_seconds(3.0, 10.0, ceiling=1800) == 3.0
    assert review_stats.bounded_seconds(500.0, 10.0, ceiling=1800) == 12.0
    assert review_stats.bounded_seconds(-4.0, 10.0, ceiling=1800) == 0.0
    assert review_stats.bounded_seconds(None, 7.5, ceiling=1800) == 7.5
    assert review_stats.bounded_seconds(None, 5000.0, ceiling=1800) == 1800.0


def test_it_counts_a_streak_of_consecutive_days_ending_today_or_yesterday():
    today = date(2026, 3, 10)
    assert review_stats.day_streak([date(2026, 3, 10), date(2026, 3, 9), date(2026, 3, 7)], today) == 2
    assert review_stats.day_streak([date(2026, 3, 9), date(2026, 3, 8)], today) == 2
    assert review_stats.day_streak([date(2026, 3, 7)], today) == 0


def test_it_takes_medians_per_key_ignoring_missing_values():
    assert review_stats.median_by_key([("a", 1.0), ("a", 3.0), ("a", None), ("b", 4.0), ("a", 10.0)]) == {
        "a": 3.0,
        "b": 4.0,
    }


def test_it_counts_gold_accuracy_per_annotator():
    rows = [("ann", "pos", "pos"), ("ann", "neg", "pos"), ("bob", "neg", "neg")]
    assert review_stats.accuracy_by_key(rows) == {"ann": (1, 2), "bob": (1, 1)}


def test_it_rates_pairwise_agreement_with_others_using_each_annotators_newest_label():
    answers = [
        # item 1: ann and bob agree, cid differs → ann 1/2, bob 1/2, cid 0/2
        (1, "ann", "pos"),
        (1, "bob", "pos"),
        (1, "cid", "neg"),
        # item 2: ann's newest label (first row) is neg, matching bob → 1/1 each; the older "pos" is ignored
        (2, "ann", "neg"),
        (2, "bob", "neg"),
        (2, "ann", "pos"),
        # item 3: one annotator only, no pairs
        (3, "cid", "pos"),
    ]
    assert review_stats.agreement_by_annotator(answers) == {"ann": (2, 3), "bob": (2, 3), "cid": (0, 2)}


def test_it_lists_items_with_more_than_one_distinct_label():
    answers = [(1, "ann", "pos"), (1, "bob", "neg"), (2, "ann", "pos"), (2, "bob", "pos"), (3, "ann", "")]
    assert review_stats.disagreements(answers) == {1: {"ann": "pos", "bob": "neg"}}
