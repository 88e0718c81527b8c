"""bench_certify on a small routing-format file (gold plays the humans)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import LabelCertificate, ReviewTask
from annotation.routing.certificates import certificate_as_dict
from synthstudio.models import HumanAnnotation, Sample


def write_certify_csv(path, rows: int = 300, seed: int = 0) -> None:
    """LLM labels that are wrong mostly where the confidence is low: a certificate can keep the confident
    ones. Two topics so the embeddings carry some signal."""
    rng = np.random.default_rng(seed)
    labels = ["sport", "food"]
    topics = {"sport": "football match goal striker", "food": "pasta sauce recipe oven"}
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "gold", "llm_label", "llm_confidence", "llm_probs"])
        for i in range(rows):
            gold = labels[i % 2]
            confidence = round(float(rng.choice([0.6, 0.8, 0.99])), 2)
            wrong = rng.uniform() < {0.6: 0.5, 0.8: 0.1, 0.99: 0.0}[confidence]
            llm = labels[(i + 1) % 2] if wrong else gold
            writer.writerow([f"{topics[gold]} item {i}", gold, llm, confidence, ""])


def run(command: str, *args: str) -> dict:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return json.loads(out.getvalue())


def test_bench_certify_keeps_the_error_guarantee_and_saves_labels_with_llm_confidence(tmp_path, db):
    data = tmp_path / "certify.csv"
    write_certify_csv(data)
    report = run(
        "bench_certify",
        "--data",
        str(data),
        "--trials",
        "20",
        "--uncertainty",
        "llm",
        "--draws",
        "200",
        "--epsilon",
        "0.1",
        "--alpha",
        "0.1",
        "--end-to-end-trials",
        "0",
        "--current-database",
    )
    assert report["n"] == 300 and report["trials"] == 20
    assert report["method"]["uncertainty"] == "llm" and report["method"]["fit_draws"] == 0
    assert report["violation_rate"] <= 0.3
    assert 0 < report["saved_share_mean"] == pytest.approx(1 - report["human_share_mean"], abs=1e-3)
    assert set(report["baseline"]) >= {"violation_rate", "error_q95", "saved_share_mean"}


def test_bench_certify_with_the_learned_score_and_shuffled_confidence(tmp_path, db):
    data = tmp_path / "certify.csv"
    write_certify_csv(data)
    report = run(
        "bench_certify",
        "--data",
        str(data),
        "--trials",
        "5",
        "--uncertainty",
        "learned",
        "--draws",
        "150",
        "--fit-draws",
        "60",
        "--shuffle-confidence",
        "--epsilon",
        "0.1",
        "--current-database",
    )
    assert report["method"] == {
        "uncertainty": "learned",
        "confidence": "shuffled",
        "bound": "auto",  # the default: betting below certify.CLT_MIN_DRAWS draws, CLT from there
        "draws": 150,
        "fit_draws": 60,
        "uniform_share": 0.3,
        "power": 0.5,
        "fit_uniform_share": 0.2,
        "keep_margin": 3.0,
    }
    # the fit sample alone is 60 of 300 items: humans label at least that
    assert report["human_share_mean"] >= 0.2 and 0 <= report["error_q95"] <= 1


def test_one_trial_answers_through_the_review_services_and_measures_the_final_labels(tmp_path, db):
    data = tmp_path / "certify.csv"
    write_certify_csv(data, rows=200)
    report = run(
        "bench_certify",
        "--data",
        str(data),
        "--trials",
        "2",
        "--uncertainty",
        "llm",
        "--draws",
        "150",
        "--epsilon",
        "0.1",
        "--end-to-end-trials",
        "1",
        "--current-database",
    )
    end_to_end = report["end_to_end"]
    assert end_to_end["trials"] == 1 and len(end_to_end["errors"]) == 1
    tasks = ReviewTask.objects.filter(strategy="certify")
    routed = tasks.values("sample_id").distinct().count()
    # every item the method sent to humans was answered through the review service, once
    assert routed == HumanAnnotation.objects.filter(sample__project=tasks.first().project).count()
    assert end_to_end["human_shares"][0] == pytest.approx(routed / 200)
    assert 0 < routed < 200 and end_to_end["errors"][0] <= 0.1
    # final labels of the reviewed items are the humans' (gold) labels: the topic words name the gold label
    reviewed = Sample.objects.filter(review_tasks__in=tasks).values_list("text", "final_label")
    assert all(label == ("sport" if text.startswith("football") else "food") for text, label in reviewed)


def test_bench_certify_rejects_bad_input_with_a_clear_message(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run("bench_certify", "--data", str(tmp_path / "missing.csv"))
    data = tmp_path / "certify.csv"
    write_certify_csv(data, rows=20)
    with pytest.raises(CommandError, match="epsilon"):
        run("bench_certify", "--data", str(data), "--epsilon", "1.5", "--uncertainty", "llm")
    with pytest.raises(CommandError, match="fit-uniform-share"):
        run("bench_certify", "--data", str(data), "--fit-uniform-share", "0", "--uncertainty", "llm")


def test_one_trial_runs_through_the_quality_target_routing_service_and_reports_its_certificate(tmp_path, db):
    data = tmp_path / "certify.csv"
    write_certify_csv(data, rows=200)  # wrong only where the confidence is 0.6 or 0.8: separable by it
    report = run(
        "bench_certify",
        "--data",
        str(data),
        "--trials",
        "1",
        "--uncertainty",
        "llm",
        "--draws",
        "100",
        "--epsilon",
        "0.1",
        "--alpha",
        "0.1",
        "--end-to-end-path",
        "quality-target",
        "--current-database",
    )
    end_to_end = report["end_to_end"]
    assert end_to_end["path"] == "quality-target" and end_to_end["trials"] == 1
    assert 0 <= end_to_end["error"] <= 1 and 0 <= end_to_end["human_share"] <= 1
    assert end_to_end["error"] <= 0.1  # gold is the truth here: the guarantee holds
    (certificate,) = LabelCertificate.objects.all()
    assert (certificate.epsilon, certificate.confidence) == (0.1, 0.9) and certificate.score == "llm"
    assert end_to_end["statement"] == certificate_as_dict(certificate, stale=False)["statement"]
    assert end_to_end["statement"].startswith("At most 10.0% of the final labels are wrong")
    # the service routed (calibration, then the threshold batch) and every routed item was answered once
    tasks = ReviewTask.objects.filter(project=certificate.project, strategy="quality_target")
    routed = tasks.values("sample_id").distinct().count()
    assert not tasks.filter(is_open=True).exists() and tasks.filter(is_audit=True).exists()
    assert routed == HumanAnnotation.objects.filter(sample__project=certificate.project).count()
    assert end_to_end["human_share"] == pytest.approx(routed / 200) == pytest.approx(certificate.human_share)
    assert 0 < routed < 200  # the confident items keep the LLM's label
