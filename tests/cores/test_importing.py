"""The plain-Python import core: readers and the row parser, checked against hand-written files."""

from __future__ import annotations

import io
import json

import pytest

from synthstudio.importing import (
    ColumnMapping,
    ImportFileError,
    RowError,
    RowParser,
    detect_format,
    parse_file,
    preview_records,
    read_records,
)

LABELS = ["positive", "negative", "mixed"]


def rows_of(data: bytes, file_format: str) -> list[dict]:
    return [record.values for record in read_records(io.BytesIO(data), file_format)]


def parse(data: bytes, file_format: str, **mapping) -> list:
    mapping.setdefault("text_columns", ["text"])
    parser = RowParser(ColumnMapping(**mapping), LABELS)
    return list(parse_file(io.BytesIO(data), file_format, parser))


def test_it_reads_csv_with_quoted_commas_newlines_and_a_bom():
    data = '\ufefftext,label\n"Good, really",positive\n"two\nlines",negative\n'.encode()
    assert rows_of(data, "csv") == [
        {"text": "Good, really", "label": "positive"},
        {"text": "two\nlines", "label": "negative"},
    ]


def test_it_reads_tsv():
    assert rows_of(b"text\tlabel\nfine\tpositive\n", "tsv") == [{"text": "fine", "label": "positive"}]


def test_it_reads_jsonl_and_skips_blank_lines():
    data = b'{"text": "a"}\n\n{"text": "b", "n": 2}\n'
    assert rows_of(data, "jsonl") == [{"text": "a"}, {"text": "b", "n": 2}]


def test_it_reads_a_json_array_across_chunk_boundaries(monkeypatch):
    monkeypatch.setattr("synthstudio.importing.JSON_CHUNK_CHARS", 7)
    records = [{"text": f"sample number {i} ✓", "meta": {"i": i}} for i in range(5)]
    assert rows_of(json.dumps(records, ensure_ascii=False).encode(), "json") == records


def test_it_rejects_a_json_file_that_is_not_an_array():
    with pytest.raises(ImportFileError, match="array of objects"):
        rows_of(b'{"text": "a"}', "json")


def test_it_names_the_row_of_malformed_json_in_an_array():
    with pytest.raises(RowError) as error:
        rows_of(b'[{"text": "a"}, {"text": "b",}]', "json")
    assert error.value.row == 2 and "malformed JSON" in str(error.value)


def test_it_names_the_row_of_a_json_array_that_never_closes():
    with pytest.raises(RowError, match="Row 2: malformed JSON"):
        rows_of(b'[{"text": "a"}, {"text": "b"', "json")


def test_it_names_the_row_and_line_of_bad_encoding_in_csv():
    with pytest.raises(RowError) as error:
        rows_of(b"text\nfine\nbad \xff byte\n", "csv")
    assert (error.value.row, error.value.line) == (2, 3)
    assert "bad encoding" in str(error.value)


def test_it_names_the_row_of_bad_encoding_inside_a_json_array():
    with pytest.raises(RowError, match="Row 3: bad encoding"):
        rows_of(b'[{"text": "a"}, {"text": "b"}, {"text": "\xe9"}]', "json")


def test_it_names_the_row_of_a_jsonl_line_that_is_not_an_object():
    with pytest.raises(RowError, match="Row 2: expected a JSON object, got an array"):
        rows_of(b'{"text": "a"}\n["b"]\n', "jsonl")


def test_it_rejects_a_csv_row_with_more_cells_than_the_header():
    with pytest.raises(RowError, match="Row 1 \\(line 2\\): 3 cells but the header names 2 columns"):
        rows_of(b"text,label\na,b,c\n", "csv")


def test_it_reports_a_short_csv_row_as_a_missing_column():
    with pytest.raises(RowError, match="Row 2 \\(line 3\\): missing column 'label'"):
        parse(b"text,label\na,positive\nb\n", "csv", text_columns=["label"])


def test_it_rejects_empty_text():
    with pytest.raises(RowError, match="Row 2: empty text"):
        parse(b'{"text": "a"}\n{"text": "   "}\n', "jsonl")


def test_it_rejects_a_label_not_in_the_codebook():
    with pytest.raises(RowError, match="label 'neutral' in column 'gold' is not in the codebook"):
        parse(b"text,gold\na,neutral\n", "csv", gold_label_column="gold")


def test_it_matches_labels_regardless_of_case():
    [row] = parse(b"text,gold\na,Positive\n", "csv", gold_label_column="gold")
    assert row.gold_label == "positive"


@pytest.mark.parametrize("value", ["high", "1.5", "-0.1", "nan"])
def test_it_rejects_a_bad_confidence(value):
    with pytest.raises(RowError, match="bad confidence"):
        parse(
            f"text,llm,conf\na,positive,{value}\n".encode(),
            "csv",
            llm_label_column="llm",
            llm_confidence_column="conf",
        )


def test_it_normalises_the_distribution_and_takes_confidence_from_it():
    data = b'{"text": "a", "llm": "positive", "dist": {"positive": 3, "negative": 1}}\n'
    [row] = parse(data, "jsonl", llm_label_column="llm", llm_distribution_column="dist")
    assert row.llm_distribution == {"positive": 0.75, "negative": 0.25, "mixed": 0.0}
    assert row.llm_confidence == 0.75


def test_it_takes_the_most_probable_label_when_only_a_distribution_is_given():
    data = b'text,dist\na,"{""negative"": 0.6, ""mixed"": 0.4}"\n'
    [row] = parse(data, "csv", llm_distribution_column="dist")
    assert (row.llm_label, row.llm_confidence) == ("negative", 0.6)


def test_it_keeps_a_given_confidence_over_the_distribution():
    data = b'{"text": "a", "llm": "positive", "conf": 0.9, "dist": {"positive": 1, "negative": 1}}\n'
    [row] = parse(
        data, "jsonl", llm_label_column="llm", llm_confidence_column="conf", llm_distribution_column="dist"
    )
    assert row.llm_confidence == 0.9


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ('"{not json"', "malformed JSON in 'dist'"),
        ('"[0.5, 0.5]"', "must be a JSON object"),
        ('"{""neutral"": 1}"', "label 'neutral' in 'dist' is not in the codebook"),
        ('"{""positive"": -1}"', "must be a finite number"),
        ('"{""positive"": 0}"', "sum to 0"),
    ],
)
def test_it_rejects_a_bad_distribution(cell, reason):
    with pytest.raises(RowError, match=reason):
        parse(f"text,dist\na,{cell}\n".encode(), "csv", llm_distribution_column="dist")


def test_it_joins_several_text_columns_and_keeps_them_as_fields():
    data = b'{"question": "Where is my parcel?", "answer": "On its way.", "lang": "en"}\n'
    [row] = parse(data, "jsonl", text_columns=["question", "answer"], field_columns=["lang"])
    assert row.text == "question: Where is my parcel?\nanswer: On its way."
    assert row.fields == {"question": "Where is my parcel?", "answer": "On its way.", "lang": "en"}


def test_it_previews_the_first_rows_and_their_columns():
    data = b'{"text": "a"}\n{"text": "b", "label": "x"}\n{"text": "c"}\n'
    preview = preview_records(io.BytesIO(data), "jsonl", limit=2)
    assert preview.columns == ["text", "label"]
    assert len(preview.rows) == 2 and preview.error == ""


def test_it_detects_the_format_from_the_file_name():
    assert [detect_format(name) for name in ["a.CSV", "b.tsv", "c.jsonl", "d.json"]] == [
        "csv",
        "tsv",
        "jsonl",
        "json",
    ]
    with pytest.raises(ImportFileError, match="Cannot tell the format"):
        detect_format("data.xlsx")
