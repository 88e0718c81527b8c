"""An accepted text correction travels snapshot → every export format (issue 14 item 3): `text` is the
corrected text and `original_text` the text before it (null/empty for uncorrected rows). The files are
written the way the export jobs write them (export_file) and read back with their own readers."""

from __future__ import annotations

import csv
import json
import zipfile

import pyarrow.parquet as pq
import pytest

from annotation.models import SampleTextVersion
from annotation.review.answers import review_answer_submit
from annotation.review.lead import text_correction_decide
from annotation.review.queue import review_gold_rate_set
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from evaluation.export.writers import export_file
from evaluation.models import ExportFormat
from synthstudio.models import Sample
from tests.factories import reserved_assignment

ORIGINAL = 'Dull, "predictable" and far too lnog;\nreally.'
FIXED = 'Dull, "predictable" and far too long;\nreally.'
UNTOUCHED = "A delight from start to finish."
PENDING_ORIGINAL = "Two hours I will nevr get back."


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def snapshot(project, lead, annotator):
    """Three reviewed samples: one correction accepted by the lead, one left pending, one uncorrected."""
    review_gold_rate_set(project=project, gold_rate=0.0)
    edits = {ORIGINAL: FIXED, PENDING_ORIGINAL: "Two hours I will never get back.", UNTOUCHED: UNTOUCHED}
    for original, edited in edits.items():
        sample = Sample.objects.create(project=project, text=original)
        assignment = reserved_assignment(project=project, annotator=annotator, sample=sample)
        review_answer_submit(
            assignment=assignment, label="negative", edited_text=edited, codebook=project.codebook
        )
    text_correction_decide(correction=SampleTextVersion.objects.get(text=FIXED), accept=True, user=lead)
    return snapshot_create(
        project=project, user=lead, settings=FilterSettings(), split_fractions={"train": 0.5, "test": 0.5}
    )


EXPECTED = {FIXED: ORIGINAL, PENDING_ORIGINAL: None, UNTOUCHED: None}  # exported text -> original_text


def test_jsonl_writes_the_corrected_text_and_the_original(snapshot):
    path = export_file(snapshot, ExportFormat.JSONL)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {row["text"]: row["original_text"] for row in rows} == EXPECTED


def test_csv_writes_the_corrected_text_and_the_original_or_an_empty_cell(snapshot):
    with export_file(snapshot, ExportFormat.CSV).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["text"]: row["original_text"] for row in rows} == {
        text: original or "" for text, original in EXPECTED.items()
    }


def test_parquet_writes_the_corrected_text_and_the_original_or_null(snapshot):
    rows = pq.read_table(export_file(snapshot, ExportFormat.PARQUET)).to_pylist()
    assert {row["text"]: row["original_text"] for row in rows} == EXPECTED


def test_the_hugging_face_folder_loads_with_the_corrected_text_and_the_original(snapshot, tmp_path):
    datasets = pytest.importorskip("datasets")
    with zipfile.ZipFile(export_file(snapshot, ExportFormat.HF)) as archive:
        archive.extractall(tmp_path / "unzipped")
    (folder,) = (tmp_path / "unzipped").iterdir()
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
    rows = [row for split in loaded for row in loaded[split]]
    assert {row["text"]: row["original_text"] for row in rows} == EXPECTED
    assert loaded["train"].features["original_text"].dtype == "string"
    assert "`original_text` is the text before it" in (folder / "README.md").read_text(encoding="utf-8")


def test_label_studio_tasks_carry_the_corrected_text_and_the_original(snapshot):
    tasks = json.loads(export_file(snapshot, ExportFormat.LABEL_STUDIO).read_text(encoding="utf-8"))
    assert {task["data"]["text"]: task["data"]["original_text"] for task in tasks} == EXPECTED
