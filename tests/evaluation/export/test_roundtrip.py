"""Export round trips: HF folder → datasets.load_dataset, Label Studio JSON → import, JSONL/CSV/Parquet."""

import csv
import io
import json
import zipfile

import pyarrow.parquet as pq
import pytest

from annotation.review.final_labels import final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create, snapshot_rows
from evaluation.export.labelstudio import LabelStudioImportError, labelstudio_import
from evaluation.export.writers import (
    csv_chunks,
    export_file,
    hf_folder_write,
    jsonl_chunks,
    labelstudio_chunks,
)
from synthstudio.models import HumanAnnotation, HumanSource, LabelMethod, LLMAnnotation, Project, Sample

TEXTS = [
    ("A delight from start to finish.", "positive", 0.93, None),
    ("Two hours I will never get back.", "negative", 0.88, "negative"),
    ("The acting was superb, the score moving.", "positive", 0.61, "negative"),
    ('Dull, "predictable" and far too long;\nreally.', "negative", 0.77, None),
    ("Ünïcödé — fine film ✓", "positive", 0.7, "positive"),
    ("Mediocre at best.", "negative", 0.52, None),
]


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def snapshot(project, lead, annotator):
    for text, label, confidence, human in TEXTS:
        sample = Sample.objects.create(project=project, text=text, fields={"source": "test"})
        other = "negative" if label == "positive" else "positive"
        LLMAnnotation.objects.create(
            sample=sample,
            label=label,
            distribution={label: confidence, other: 1 - confidence},
            confidence=confidence,
            method=LabelMethod.IMPORTED,
            model_name="gpt-test",
        )
        if human:
            HumanAnnotation.objects.create(
                sample=sample, annotator=annotator, label=human, source=HumanSource.REVIEW
            )
        final_label_refresh(sample=sample)
    return snapshot_create(
        project=project,
        user=lead,
        settings=FilterSettings(),
        split_fractions={"train": 0.5, "test": 0.5},
        licence="cc-by-4.0",
    )


def expected_rows(snapshot):
    return sorted(
        (row["sample_ref"], row["text"], row["label"], row["split"]) for row in snapshot_rows(snapshot)
    )


def test_the_hugging_face_folder_loads_with_load_dataset_and_gives_the_same_rows(snapshot, tmp_path):
    datasets = pytest.importorskip("datasets")
    hf_folder_write(snapshot, tmp_path / "ds")
    # a private cache: datasets would otherwise reuse a dataset it loaded from the same path in an earlier run
    loaded = datasets.load_dataset(str(tmp_path / "ds"), cache_dir=str(tmp_path / "hf-cache"))
    assert set(loaded.keys()) == {"train", "test"}
    got = sorted((row["id"], row["text"], row["label"], name) for name in loaded for row in loaded[name])
    assert got == expected_rows(snapshot)
    assert loaded["train"].features["weight"].dtype == "float64"


def test_the_dataset_card_has_yaml_configs_features_and_provenance(snapshot, tmp_path):
    hf_folder_write(snapshot, tmp_path / "ds")
    card = (tmp_path / "ds" / "README.md").read_text()
    header = card.split("---")[1]
    assert "license: cc-by-4.0" in header
    assert "path: data/train.parquet" in header and "path: data/test.parquet" in header
    assert "- name: label\n    dtype: string" in header
    assert "Classify the sentiment of a film review." in card
    assert "adjudicated > human majority > llm" in card
    assert "- positive: 2" in card and "- negative: 4" in card


def test_the_hf_zip_contains_the_folder(snapshot):
    path = export_file(snapshot, "hf")
    names = zipfile.ZipFile(path).namelist()
    assert "film-reviews-v1/README.md" in names
    assert "film-reviews-v1/data/train.parquet" in names


def test_jsonl_csv_and_parquet_carry_the_same_rows(snapshot):
    jsonl = [json.loads(line) for line in b"".join(jsonl_chunks(snapshot)).decode().splitlines()]
    rows = list(csv.DictReader(io.StringIO(b"".join(csv_chunks(snapshot)).decode())))
    table = pq.read_table(export_file(snapshot, "parquet")).to_pylist()
    expected = expected_rows(snapshot)
    assert sorted((r["id"], r["text"], r["label"], r["split"]) for r in jsonl) == expected
    assert sorted((int(r["id"]), r["text"], r["label"], r["split"]) for r in rows) == expected
    assert sorted((r["id"], r["text"], r["label"], r["split"]) for r in table) == expected
    assert jsonl[0]["fields"] == {"source": "test"}
    assert json.loads(table[0]["fields"]) == {"source": "test"}


def test_the_label_studio_export_has_annotations_choices_and_prediction_scores(snapshot):
    tasks = json.loads(b"".join(labelstudio_chunks(snapshot)))
    by_text = {task["data"]["text"]: task for task in tasks}
    reviewed = by_text["The acting was superb, the score moving."]
    assert reviewed["annotations"][0]["result"][0]["value"]["choices"] == ["negative"]
    assert reviewed["predictions"][0]["result"][0]["value"]["choices"] == ["positive"]
    assert reviewed["predictions"][0]["score"] == 0.61
    assert by_text["A delight from start to finish."]["annotations"] == []


def test_label_studio_export_then_import_gives_the_same_tasks_human_labels_and_predictions(snapshot, lead):
    tasks = json.loads(b"".join(labelstudio_chunks(snapshot)))
    target = Project.objects.create(name="Copy", created_by=lead)
    counts = labelstudio_import(project=target, tasks=tasks, label_names=["positive", "negative"])
    assert (counts["tasks"], counts["annotations"], counts["predictions"], counts["duplicates"]) == (
        6,
        3,
        6,
        0,
    )
    imported = {sample.text: sample for sample in Sample.objects.filter(project=target)}
    assert set(imported) == {text for text, *_ in TEXTS}
    for text, llm, confidence, human in TEXTS:
        sample = imported[text]
        assert list(sample.human_annotations.values_list("label", flat=True)) == ([human] if human else [])
        prediction = sample.llm_annotations.get()
        assert (prediction.label, prediction.confidence, prediction.method) == (llm, confidence, "imported")
        other = "negative" if llm == "positive" else "positive"
        assert prediction.distribution == {llm: confidence, other: 1 - confidence}  # read back exactly
        assert sample.final_label == (human or llm)


def test_a_broken_label_studio_file_imports_nothing(project):
    tasks = [{"data": {"text": "fine"}}, {"no_data": True}]
    with pytest.raises(LabelStudioImportError, match="Task 2"):
        labelstudio_import(project=project, tasks=tasks)
    assert not Sample.objects.filter(project=project).exists()
