"""bench_estimates on a small routing-format file (gold plays the humans)."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from tests.annotation.routing.test_bench_certify import run, write_certify_csv


def test_bench_estimates_reports_coverage_and_width_against_human_only(tmp_path):
    data = tmp_path / "estimates.csv"
    write_certify_csv(data, rows=400)
    report = run("bench_estimates", "--data", str(data), "--budget", "80", "--trials", "30")
    names = [s["name"] for s in report["statistics"]]
    assert names[1] == "llm_accuracy" and names[0].startswith("prevalence of ")
    for statistic in report["statistics"]:
        assert set(statistic["coverage"]) == {"human_only", "ppi", "cdi", "cdi_one_shot"}
        assert 0.6 <= statistic["coverage"]["cdi"] <= 1.0
        assert 0 < statistic["width_ratio"]["cdi"] < statistic["width_ratio_max"]["cdi"] + 1e-9
        assert statistic["human_labels_mean"]["ppi"] == 80.0
    # informative confidence: CDI is narrower than human-only for the LLM's accuracy
    assert report["statistics"][1]["width_ratio"]["cdi"] < 1.0


def test_bench_estimates_rejects_a_budget_larger_than_the_data(tmp_path):
    data = tmp_path / "estimates.csv"
    write_certify_csv(data, rows=20)
    with pytest.raises(CommandError, match="budget"):
        run("bench_estimates", "--data", str(data), "--budget", "50")
