"""bench_routing on a tiny routing-format file, in the test database (--current-database)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import ReviewTask
from synthstudio.models import HumanAnnotation


def write_routing_csv(path, rows: int = 40) -> None:
    topics = ["football match goal striker", "pasta sauce recipe oven", "election vote parliament"]
    labels = ["sport", "food", "politics"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "gold", "llm_label", "llm_confidence", "llm_probs"])
        for i in range(rows):
            gold = labels[i % 3]
            wrong = i % 4 == 0  # a quarter of the LLM labels are wrong, at lower confidence
            llm = labels[(i + 1) % 3] if wrong else gold
            confidence = 0.55 if wrong else 0.95
            probs = (
                json.dumps({llm: confidence, gold if wrong else labels[(i + 2) % 3]: 1 - confidence})
                if i % 2
                else ""
            )
            writer.writerow([f"{topics[i % 3]} number {i}", gold, llm, confidence, probs])


def test_it_prints_error_capture_per_strategy_and_budget(tmp_path, db):
    data = tmp_path / "tiny.csv"
    write_routing_csv(data)
    out = io.StringIO()
    call_command(
        "bench_routing",
        "--data",
        str(data),
        "--budgets",
        "0.1,0.2",
        "--strategies",
        "random,entropy,learned",
        "--current-database",
        stdout=out,
    )
    report = json.loads(out.getvalue())
    assert report["n"] == 40 and report["llm_accuracy"] == pytest.approx(0.75)
    assert [(r["strategy"], r["budget"]) for r in report["results"]] == [
        ("random", 0.1),
        ("random", 0.2),
        ("entropy", 0.1),
        ("entropy", 0.2),
        ("learned", 0.1),
        ("learned", 0.2),
    ]
    for result in report["results"]:
        assert result["routed"] == round(result["budget"] * 40)  # never beyond the budget
        assert result["final_accuracy"] >= report["llm_accuracy"]
        expected = (result["final_accuracy"] - report["llm_accuracy"]) / (
            result["oracle_accuracy"] - report["llm_accuracy"]
        )
        assert result["error_capture"] == pytest.approx(expected, abs=1e-3)
    # the ten wrong LLM labels are exactly the least confident ones: entropy routing sends only those
    assert [r["error_capture"] for r in report["results"] if r["strategy"] == "entropy"] == [1.0, 1.0]
    # every routed item (8 per strategy at the last budget) was answered through the review queue, once
    assert ReviewTask.objects.count() == 3 * 8
    assert HumanAnnotation.objects.filter(assignment__isnull=False).count() == 3 * 8


def test_it_refuses_unknown_strategies(tmp_path, db):
    data = tmp_path / "tiny.csv"
    write_routing_csv(data, rows=6)
    with pytest.raises(CommandError):
        call_command("bench_routing", "--data", str(data), "--strategies", "psychic", "--current-database")
