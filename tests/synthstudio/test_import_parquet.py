"""Hugging Face datasets in (issue 15): a Parquet file (a dataset's data/<split>.parquet) goes through the data
import's mapping step like a CSV; written here with the `datasets` library itself."""

from __future__ import annotations

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.review.final_labels import final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from evaluation.export.writers import hf_folder_write
from synthstudio import services
from synthstudio.importing import ColumnMapping, ImportFileError, preview_records, read_records
from synthstudio.models import HumanAnnotation, JobStatus, LLMAnnotation, Project, Sample

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"


def parquet_bytes(tmp_path, columns: dict) -> bytes:
    path = tmp_path / "train.parquet"
    datasets.Dataset.from_dict(columns).to_parquet(str(path))
    return path.read_bytes()


def import_parquet(project, lead, content: bytes, capture, **mapping):
    job = services.import_create(
        project=project, user=lead, upload=SimpleUploadedFile("train.parquet", content)
    )
    assert job.file_format == "parquet"
    with capture(execute=True):
        services.import_start(job=job, mapping=ColumnMapping(**mapping))
    job.refresh_from_db()
    return job


def test_a_hugging_face_parquet_file_imports_through_the_mapping_step(
    project, lead, tmp_path, django_capture_on_commit_callbacks
):
    content = parquet_bytes(
        tmp_path,
        {
            "sentence": ["Loved it.", "Hated it.", "Loved it."],
            "gold": ["positive", None, "positive"],
            "llm_label": ["positive", "negative", "positive"],
            "llm_confidence": [0.9, 0.7, 0.9],
            "collected": [datetime.date(2026, 11, 1)] * 3,
        },
    )
    preview = preview_records(SimpleUploadedFile("t.parquet", content).file, "parquet")
    assert preview.columns == ["sentence", "gold", "llm_label", "llm_confidence", "collected"]
    job = import_parquet(
        project,
        lead,
        content,
        django_capture_on_commit_callbacks,
        text_columns=["sentence"],
        field_columns=["collected"],
        gold_label_column="gold",
        llm_label_column="llm_label",
        llm_confidence_column="llm_confidence",
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.imported, job.duplicates) == (2, 1)
    loved = Sample.objects.get(project=project, text="Loved it.")
    assert loved.fields == {"collected": "2026-11-01"}
    assert (loved.final_label, loved.final_source) == ("positive", "human")
    assert LLMAnnotation.objects.get(sample__text="Hated it.").confidence == 0.7


def test_a_label_outside_the_codebook_in_a_parquet_file_imports_nothing(
    project, lead, tmp_path, django_capture_on_commit_callbacks
):
    content = parquet_bytes(tmp_path, {"text": ["Fine.", "Meh."], "label": ["positive", "sarcastic"]})
    job = import_parquet(
        project,
        lead,
        content,
        django_capture_on_commit_callbacks,
        text_columns=["text"],
        gold_label_column="label",
    )
    assert job.status == JobStatus.FAILED
    assert "Row 2" in job.error and "'sarcastic'" in job.error
    assert not Sample.objects.filter(project=project).exists()


def test_a_file_named_parquet_that_is_not_one_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ImportFileError, match="not a Parquet file"):
        list(read_records(SimpleUploadedFile("x.parquet", b"text\nhello\n").file, "parquet"))


def test_our_hugging_face_export_imports_back_with_its_labels(
    project, lead, samples, tmp_path, django_capture_on_commit_callbacks
):
    for sample, label in zip(samples, ["positive", "negative", "positive", "negative"], strict=True):
        HumanAnnotation.objects.create(sample=sample, label=label, source="imported")
        final_label_refresh(sample=sample)
    snapshot = snapshot_create(project=project, user=lead, settings=FilterSettings())
    hf_folder_write(snapshot, tmp_path / "ds")
    loaded = datasets.load_dataset(str(tmp_path / "ds"), cache_dir=str(tmp_path / "hf-cache"))["train"]
    target = Project.objects.create(name="Copy", created_by=lead)
    target.codebooks.create(version=1, task_description="copy").labels.create(name="positive")
    target.codebook.labels.create(name="negative")
    job = import_parquet(
        target,
        lead,
        (tmp_path / "ds" / "data" / "train.parquet").read_bytes(),
        django_capture_on_commit_callbacks,
        text_columns=["text"],
        field_columns=["split", "weight"],
        gold_label_column="label",
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    got = dict(Sample.objects.filter(project=target).values_list("text", "final_label"))
    assert got == {row["text"]: row["label"] for row in loaded}
