"""The downstream benchmark says when its test set is too small to trust (< 50 items), with n."""

from __future__ import annotations

import re

from django.template.loader import render_to_string


def results_text(project, n_test: int) -> str:
    row = {"training_set": "curated", "model": "TF-IDF + logistic regression", "n_train": 40, "n_test": n_test,
           "accuracy": 0.8, "macro_f1": 0.78, "note": ""}  # fmt: skip
    body = render_to_string(
        "evaluation/metrics/_benchmark_results.html", {"results": [row, row], "project": project}
    )
    return re.sub(r"\s+", " ", body)


def test_ten_test_items_come_with_the_caveat_and_n(project):
    text = results_text(project, 10)
    assert 'id="small-test-caveat"' in text
    assert "Only 10 test items: scores on fewer than 50 held-out items are unreliable" in text
    assert "one item moves accuracy by 10 points" in text


def test_fifty_test_items_need_no_caveat(project):
    assert 'id="small-test-caveat"' not in results_text(project, 50)
