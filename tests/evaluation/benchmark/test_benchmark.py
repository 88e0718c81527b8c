"""Downstream benchmark: training sets, the held-out split, scores and the pages."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.review.final_labels import final_label_refresh
from evaluation.benchmark.downstream import TFIDF_MODEL, benchmark_training_set, split_held_out
from evaluation.benchmark.services import benchmark_sets
from evaluation.models import BenchmarkRun
from synthstudio.models import HumanAnnotation, HumanSource, JobStatus, LabelMethod, LLMAnnotation, Sample

POSITIVE = [
    "great film",
    "wonderful acting",
    "great story",
    "lovely and great",
    "wonderful score",
    "great fun",
]
NEGATIVE = ["awful film", "boring acting", "awful story", "dull and awful", "boring score", "awful mess"]


def test_the_tfidf_model_learns_a_separable_toy_set():
    [row] = benchmark_training_set(
        name="toy", train_texts=POSITIVE + NEGATIVE, train_labels=["pos"] * 6 + ["neg"] * 6, train_vectors=None,
        test_texts=["great acting", "awful acting"], test_labels=["pos", "neg"], test_vectors=None,
    )  # fmt: skip
    assert row.model == TFIDF_MODEL
    assert (row.accuracy, row.macro_f1) == (1.0, 1.0)


def test_the_embedding_model_scores_with_sklearn_on_given_vectors():
    rng = np.random.default_rng(0)
    train = np.vstack([rng.normal(2, 0.3, (10, 4)), rng.normal(-2, 0.3, (10, 4))])
    test = np.vstack([rng.normal(2, 0.3, (3, 4)), rng.normal(-2, 0.3, (3, 4))])
    rows = benchmark_training_set(
        name="vectors", train_texts=["a"] * 10 + ["b"] * 10, train_labels=["x"] * 10 + ["y"] * 10, train_vectors=train,
        test_texts=["a"] * 3 + ["b"] * 3, test_labels=["x"] * 3 + ["y"] * 3, test_vectors=test,
    )  # fmt: skip
    assert rows[0].accuracy == 1.0


def test_a_single_class_training_set_predicts_that_class_and_says_so():
    rows = benchmark_training_set(
        name="one", train_texts=["a", "b"], train_labels=["x", "x"], train_vectors=None,
        test_texts=["c", "d"], test_labels=["x", "y"], test_vectors=None,
    )  # fmt: skip
    assert rows[0].accuracy == 0.5
    assert rows[0].note == "one class in training"


def test_the_held_out_split_is_reproducible_and_never_empty():
    assert split_held_out(list(range(10)), fraction=0.3, seed=1) == split_held_out(
        list(range(10)), fraction=0.3, seed=1
    )
    assert len(split_held_out(list(range(10)), fraction=0.3, seed=1)) == 3
    assert len(split_held_out([5], fraction=0.1, seed=0)) == 1


@pytest.fixture
def reviewed(project, annotator):
    """12 samples with LLM labels (two wrong); humans verified 8 of them."""
    truth = ["positive"] * 6 + ["negative"] * 6
    texts = POSITIVE + NEGATIVE
    llm = list(truth)
    llm[0], llm[6] = "negative", "positive"
    samples = []
    for index, (text, label, llm_label) in enumerate(zip(texts, truth, llm, strict=True)):
        sample = Sample.objects.create(project=project, text=text)
        LLMAnnotation.objects.create(
            sample=sample,
            label=llm_label,
            distribution={llm_label: 0.8},
            confidence=0.8,
            method=LabelMethod.IMPORTED,
        )
        if index % 3 != 2:
            HumanAnnotation.objects.create(
                sample=sample, annotator=annotator, label=label, source=HumanSource.REVIEW
            )
        final_label_refresh(sample=sample)
        samples.append(sample)
    return samples


def test_test_items_never_appear_in_any_training_set(project, reviewed):
    run = BenchmarkRun.objects.create(project=project, test_fraction=0.25, seed=3)
    sets, test_texts, test_labels = benchmark_sets(run=run)
    assert len(test_texts) == 2
    names = [name for name, _, _ in sets]
    assert names == ["Raw LLM labels", "Curated final labels", "Human-verified only"]
    for _name, texts, _labels in sets:
        assert not set(texts) & set(test_texts)
    raw = dict(zip(sets[0][1], sets[0][2], strict=True))
    assert len(raw) == 10
    human_only = sets[2]
    assert len(human_only[1]) == 6


def test_an_imported_test_file_is_the_held_out_set(
    lead_client, project, reviewed, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile(
        "test.csv", b"text,label\ngreat acting,positive\nawful acting,negative\n", content_type="text/csv"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            f"/projects/{project.id}/evaluation/benchmark/start/",
            {"test_fraction": "0.3", "seed": "0", "test_file": upload},
        )
    run = BenchmarkRun.objects.get(project=project)
    assert response["Location"] == f"/projects/{project.id}/evaluation/benchmark/{run.id}/"
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.test_source == "file"
    assert {r["n_test"] for r in run.results} == {2}
    assert {r["training_set"] for r in run.results} == {
        "Raw LLM labels",
        "Curated final labels",
        "Curated final labels · weighted (rule)",
        "Curated final labels · weighted (learned)",
        "Human-verified only",
    }
    assert all(r["accuracy"] is not None for r in run.results)
    page = lead_client.get(f"/projects/{project.id}/evaluation/benchmark/").content.decode()
    assert "Human-verified only" in page and "Macro-F1" in page


def test_a_bad_test_file_is_refused_with_the_row(lead_client, project):
    upload = SimpleUploadedFile("test.csv", b"text,label\ngreat acting,\n", content_type="text/csv")
    response = lead_client.post(
        f"/projects/{project.id}/evaluation/benchmark/start/",
        {"test_fraction": "0.3", "test_file": upload},
        follow=True,
    )
    assert "row 1 needs a text and a label" in response.content.decode()
    assert not BenchmarkRun.objects.exists()


def test_the_benchmark_pages_are_forbidden_to_annotators(annotator_client, project):
    run = BenchmarkRun.objects.create(project=project)
    assert annotator_client.post(f"/projects/{project.id}/evaluation/benchmark/start/").status_code == 403
    assert annotator_client.get(f"/projects/{project.id}/evaluation/benchmark/{run.id}/").status_code == 403


def test_the_benchmark_pages_are_hidden_from_outsiders(outsider_client, project):
    run = BenchmarkRun.objects.create(project=project)
    assert outsider_client.post(f"/projects/{project.id}/evaluation/benchmark/start/").status_code == 404
    assert outsider_client.get(f"/projects/{project.id}/evaluation/benchmark/{run.id}/").status_code == 404


def test_the_run_page_returns_its_fragment_to_htmx(lead_client, project):
    run = BenchmarkRun.objects.create(project=project)
    body = lead_client.get(
        f"/projects/{project.id}/evaluation/benchmark/{run.id}/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "<html" not in body and f'id="job-{run.id}"' in body


def test_snapshots_are_training_sets_without_the_held_out_items(project, reviewed, lead):
    from evaluation.curation.filters import FilterSettings
    from evaluation.curation.snapshots import snapshot_create

    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    run = BenchmarkRun.objects.create(project=project, test_fraction=0.25, seed=3)
    sets, test_texts, _ = benchmark_sets(run=run)
    snapshot_set = next(s for s in sets if s[0] == f"Snapshot v{snapshot.version}")
    assert snapshot_set[1]
    assert not set(snapshot_set[1]) & set(test_texts)


def test_snapshots_appear_as_diversity_groups(project, reviewed, lead):
    from evaluation.curation.filters import FilterSettings
    from evaluation.curation.snapshots import snapshot_create
    from evaluation.dashboards.services import diversity_groups

    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    samples = list(
        Sample.objects.filter(project=project).values_list(
            "id", "text", "provenance", "final_label", "final_source"
        )
    )
    groups = {g["group"]: g for g in diversity_groups(project=project, samples=samples)}
    assert groups[f"snapshot v{snapshot.version}"]["n"] == snapshot.items.count()
    assert groups["all samples"]["n"] == 12


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"test_fraction": "0.95"}, "The held-out share must be between 0.05 and 0.9."),
        ({"test_fraction": "a third"}, "The held-out share must be between 0.05 and 0.9."),
        ({"test_fraction": "0.3", "seed": "-1"}, "The split seed must be a whole number, 0 or more."),
        ({"test_fraction": "0.3", "seed": "²"}, "The split seed must be a whole number, 0 or more."),
    ],
)
def test_a_bad_share_or_seed_is_refused_with_a_message(lead_client, project, data, message):
    response = lead_client.post(f"/projects/{project.id}/evaluation/benchmark/start/", data, follow=True)
    assert response.redirect_chain == [(f"/projects/{project.id}/evaluation/benchmark/", 302)]
    assert message in response.content.decode()
    assert not BenchmarkRun.objects.exists()


def test_an_empty_form_starts_a_run_with_the_default_share_and_seed(lead_client, project):
    response = lead_client.post(f"/projects/{project.id}/evaluation/benchmark/start/")
    run = BenchmarkRun.objects.get()
    assert response["Location"] == f"/projects/{project.id}/evaluation/benchmark/{run.id}/"
    assert (run.test_fraction, run.seed, run.test_source) == (0.3, 0, "split")
