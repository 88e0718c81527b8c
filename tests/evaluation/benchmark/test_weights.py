"""Learned sample weights (held-out-loss reweighting) and the weighted rows of the downstream benchmark."""

from __future__ import annotations

import numpy as np

from annotation.review.final_labels import final_label_refresh
from evaluation.benchmark.downstream import EMBEDDING_MODEL, benchmark_training_set, held_out_loss_weights
from evaluation.benchmark.services import benchmark_run
from evaluation.models import BenchmarkRun
from synthstudio.models import HumanAnnotation, JobStatus, LabelMethod, LLMAnnotation, Sample


def blobs(n=60, seed=0):
    rng = np.random.default_rng(seed)
    vectors = np.vstack([rng.normal([2, 0], 0.7, size=(n, 2)), rng.normal([-2, 0], 0.7, size=(n, 2))])
    truth = ["a"] * n + ["b"] * n
    return vectors, truth


def test_labels_the_human_verified_items_contradict_weigh_less():
    vectors, truth = blobs()
    given = list(truth)
    flipped = [0, 5, 70, 90]
    for i in flipped:
        given[i] = "b" if truth[i] == "a" else "a"
    validation = list(range(0, 120, 10))
    validation_vectors, _ = vectors[validation], None
    weights = held_out_loss_weights(
        train_vectors=vectors,
        train_labels=given,
        validation_vectors=validation_vectors,
        validation_labels=[truth[i] for i in validation],
    )
    assert abs(weights.mean() - 1) < 1e-9
    clean = [i for i in range(120) if i not in flipped]
    assert (
        weights[flipped].max() < weights[clean].min() or weights[flipped].mean() < 0.3 * weights[clean].mean()
    )


def test_without_two_validation_labels_every_weight_is_one():
    vectors, truth = blobs(n=5)
    weights = held_out_loss_weights(
        train_vectors=vectors,
        train_labels=truth,
        validation_vectors=vectors[:2],
        validation_labels=["a", "a"],
    )
    assert weights.tolist() == [1.0] * 10


def test_weights_change_what_the_downstream_model_learns():
    vectors, truth = blobs(n=40, seed=1)
    given = ["a"] * 80  # every label says "a"; only the weights can bring "b" back
    given[40:44] = ["b"] * 4
    test = dict(test_texts=["x"] * 80, test_labels=truth, test_vectors=vectors)
    common = dict(name="set", train_texts=["t"] * 80, train_labels=given, train_vectors=vectors, **test)
    unweighted = benchmark_training_set(**common)[0]
    weights = [1.0] * 40 + [1.0] * 4 + [0.0] * 36  # the wrong "a" labels of the b-blob weigh nothing
    weighted = benchmark_training_set(**common, sample_weight=weights)[0]
    assert unweighted.model == weighted.model == EMBEDDING_MODEL
    assert weighted.accuracy > unweighted.accuracy + 0.3


def test_the_benchmark_reports_the_final_labels_weighted_beside_unweighted(project, annotator):
    positive = [
        "great film",
        "wonderful acting",
        "great story",
        "lovely and great",
        "wonderful score",
        "great fun",
    ]
    negative = ["awful film", "boring acting", "awful story", "dull and awful", "boring score", "awful mess"]
    for index, text in enumerate(positive + negative):
        truth = "positive" if text in positive else "negative"
        llm = ("negative" if truth == "positive" else "positive") if index in (1, 7) else truth
        sample = Sample.objects.create(project=project, text=text)
        LLMAnnotation.objects.create(
            sample=sample, label=llm, distribution={llm: 0.8}, confidence=0.8, method=LabelMethod.IMPORTED
        )
        if index % 2 == 0:
            HumanAnnotation.objects.create(sample=sample, annotator=annotator, label=truth)
        final_label_refresh(sample=sample)
    run = BenchmarkRun.objects.create(project=project, test_fraction=0.3, seed=1)
    run = benchmark_run(run=run)
    assert run.status == JobStatus.SUCCEEDED
    names = [row["training_set"] for row in run.results]
    assert "Curated final labels" in names
    assert "Curated final labels · weighted (rule)" in names
    assert "Curated final labels · weighted (learned)" in names
    unweighted = [r for r in run.results if r["training_set"] == "Curated final labels"]
    learned = [r for r in run.results if r["training_set"] == "Curated final labels · weighted (learned)"]
    assert [r["n_train"] for r in learned] == [r["n_train"] for r in unweighted]
    assert all(r["accuracy"] is not None for r in learned)
