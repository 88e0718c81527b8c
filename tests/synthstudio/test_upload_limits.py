"""Every upload is bounded and every parser answers a hostile file with a clear message, never a 500:
a million-column header, JSON nested 100,000 levels deep, over-long lines, malformed pairwise files, and
uploads over IMPORT_MAX_MB on every upload path (data import, pairwise, benchmark test file, Label Studio)."""

from __future__ import annotations

import io
import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evaluation.models import BenchmarkRun, LabelStudioImportJob, PairwiseItem
from evaluation.preferences.files import PairwiseFileError, parse_pairwise_file
from synthstudio import services
from synthstudio.importing import MAX_LINE_BYTES, ColumnMapping, RowError, read_records
from synthstudio.models import ImportJob, JobStatus, Sample

MILLION_COLUMN_HEADER = ",".join(f"col{i:06d}" for i in range(1_000_000)).encode() + b"\ntext\n"  # 9.6 MB
DEEP = 100_000


@pytest.fixture(autouse=True)
def files_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"


def deep_json(levels: int = DEEP) -> str:
    return "[" * levels + "]" * levels


def post_import(client, project, name: str, content: bytes):
    return client.post(
        reverse("import_upload", args=[project.id]), {"file": SimpleUploadedFile(name, content)}
    )


# ---------------------------------------------------------------------------------------------- data import


def test_it_refuses_a_million_column_csv_at_upload_quickly_naming_the_limit(lead_client, project, tmp_path):
    assert len(MILLION_COLUMN_HEADER) > 9_000_000
    url = reverse("import_upload", args=[project.id])  # loads the URLconf (and scikit-learn) before the clock

    started = time.perf_counter()
    response = lead_client.post(url, {"file": SimpleUploadedFile("wide.csv", MILLION_COLUMN_HEADER)})
    seconds = time.perf_counter() - started

    body = response.content.decode()
    assert response.status_code == 200
    assert "The header has 1,000,000 columns; the limit is 1,000 columns." in body
    assert seconds < 2, f"the upload took {seconds:.1f} s"
    assert len(body) < 200_000
    assert not ImportJob.objects.exists() and not Sample.objects.exists()
    assert not (tmp_path / "imports").exists() or not any((tmp_path / "imports").rglob("*.csv"))


def test_the_mapping_page_of_a_stored_million_column_file_fails_fast_and_stays_small(
    lead_client, project, lead, tmp_path
):
    # a file stored before the upload check existed: the preview itself must stay fast and small
    path = tmp_path / "wide.csv"
    path.write_bytes(MILLION_COLUMN_HEADER)
    job = ImportJob.objects.create(
        project=project, created_by=lead, original_name="wide.csv", stored_path=str(path), file_format="csv",
        size_bytes=len(MILLION_COLUMN_HEADER),
    )  # fmt: skip

    url = reverse("import_mapping", args=[project.id, job.id])

    started = time.perf_counter()
    response = lead_client.get(url)
    seconds = time.perf_counter() - started

    body = response.content.decode()
    assert response.status_code == 200
    assert "This file cannot be imported" in body and "the limit is 1,000 columns" in body
    assert seconds < 2, f"the preview took {seconds:.1f} s"
    assert len(body) < 200_000 and 'name="text_columns"' not in body


def test_it_refuses_a_header_of_1001_short_columns(lead_client, project):
    header = ",".join(f"c{i}" for i in range(1001)).encode() + b"\n"

    response = post_import(lead_client, project, "wide.csv", header + b"x" + b",x" * 1000 + b"\n")

    assert "The header has 1,001 columns; the limit is 1,000 columns." in response.content.decode()
    assert not ImportJob.objects.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deep.jsonl", f'{{"text": "a"}}\n{{"text": "b", "meta": {deep_json()}}}\n'.encode()),
        ("deep.json", f'[{{"text": "a", "meta": {deep_json()}}}]'.encode()),
    ],
)
def test_it_refuses_json_nested_too_deep_with_a_clear_message(lead_client, project, name, content):
    response = post_import(lead_client, project, name, content)

    body = response.content.decode()
    assert response.status_code == 200
    assert "nested more than 64 levels deep; the limit is 64 levels" in body
    assert not ImportJob.objects.exists()


def test_it_accepts_json_nested_64_levels_and_refuses_65(lead_client, project):
    at_limit = post_import(
        lead_client, project, "ok.jsonl", f'{{"text": "a", "meta": {deep_json(63)}}}\n'.encode()
    )
    past_limit = post_import(
        lead_client, project, "no.jsonl", f'{{"text": "a", "meta": {deep_json(64)}}}\n'.encode()
    )

    assert at_limit.status_code == 302 and ImportJob.objects.count() == 1
    assert "Row 1: the JSON is nested more than 64 levels deep" in past_limit.content.decode()
    assert ImportJob.objects.count() == 1


def test_a_deep_distribution_cell_fails_the_import_job_naming_the_row_and_limit(
    project, lead, django_capture_on_commit_callbacks
):
    content = f'text,dist\nfine,"{{""positive"": 1}}"\ndeep,"{deep_json()}"\n'.encode()
    job = services.import_create(project=project, user=lead, upload=SimpleUploadedFile("d.csv", content))
    with django_capture_on_commit_callbacks(execute=True):
        services.import_start(
            job=job, mapping=ColumnMapping(text_columns=["text"], llm_distribution_column="dist")
        )

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.bad_row == 2
    assert "Row 2 (line 3): 'dist': the JSON is nested more than 64 levels deep" in job.error
    assert not Sample.objects.exists()


def test_it_refuses_a_line_over_the_limit_at_upload(lead_client, project):
    content = b"text\nfine\n" + b"x" * (MAX_LINE_BYTES + 10) + b"\n"

    response = post_import(lead_client, project, "long.csv", content)

    assert (
        "Row 2 (line 3): the row is longer than 1 MB; the limit is 1 MB per row" in response.content.decode()
    )
    assert not ImportJob.objects.exists()


@pytest.mark.parametrize(
    ("file_format", "content", "reason"),
    [
        # a quoted field spanning many short lines is one record: bounded as a whole
        ("csv", b'text\nfine\n"' + b"line\n" * (MAX_LINE_BYTES // 5 + 10) + b'"\n', "Row 2 (line 3): the row is longer"),
        ("jsonl", b'{"text": "a"}\n{"text": "' + b"x" * MAX_LINE_BYTES + b'"}\n', "Row 2: the line is longer"),
        ("json", b'[{"text": "a"}, {"text": "' + b"x" * (2 * MAX_LINE_BYTES) + b'"}]', "Row 2: malformed JSON, or an object longer than 1 MB"),
        ("jsonl", json.dumps({f"k{i}": i for i in range(1001)}).encode() + b"\n", "Row 1: the object has 1,001 fields; the limit is 1,000"),
    ],
)  # fmt: skip
def test_the_readers_bound_every_record(file_format, content, reason):
    with pytest.raises(RowError) as error:
        list(read_records(io.BytesIO(content), file_format))
    assert str(error.value).startswith(reason)


# ---------------------------------------------------------------------------------------------- pairwise


def test_a_100k_deep_pairwise_file_gets_a_clear_error_not_a_500(lead_client, project):
    content = f'[{{"prompt": {deep_json()}, "response_a": "x", "response_b": "y", "annotator": "a", "choice": "a"}}]'
    upload = SimpleUploadedFile("deep.json", content.encode())

    response = lead_client.post(reverse("evaluation:pairwise_import", args=[project.id]), {"file": upload})

    assert response.status_code == 200
    assert (
        "Could not import deep.json: Row 1: the JSON is nested more than 64 levels deep"
        in response.content.decode()
    )
    assert not PairwiseItem.objects.exists()


GOOD = {"prompt": "p", "response_a": "x", "response_b": "y", "annotator": "ann", "choice": "a"}
PANDALM = {"cmp_key": "m1_m2", "instruction": "i", "response1": "x", "response2": "y", "annotator1": 1}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rows.json", b"[1, 2]", "Row 1: expected a JSON object, found '1'"),
        ("rows.jsonl", b'{"prompt": "p"\n', "Row 1: malformed JSON"),
        ("rows.json", json.dumps([{**GOOD, "prompt": {"a": 1}}]).encode(), "row 1: 'prompt' must be text, got an object"),
        ("rows.json", json.dumps([GOOD, {**GOOD, "annotator": None}]).encode(), "row 2: 'annotator' must be text, got null"),
        ("rows.json", json.dumps([GOOD, {**GOOD, "response_b": ["y"]}]).encode(), "row 2: 'response_b' must be text, got an array"),
        ("rows.json", json.dumps([PANDALM, {"cmp_key": "m1_m2", "response1": "x"}]).encode(), "row 2: missing column(s) response2"),
        ("rows.json", json.dumps([{**PANDALM, "cmp_key": ["m1", "m2"]}]).encode(), "row 1: 'cmp_key' must be text, got an array"),
        ("rows.csv", b"prompt,response_a,response_b,annotator,choice\np,x,y,ann,a\nbad \xff byte,x,y,ann,a\n", "Row 2 (line 3): bad encoding"),
        ("rows.csv", b"prompt,response_a,response_b,annotator,choice\np,x\n", "row 1: 'response_b' must be text, got null"),
        ("rows.csv", b"", "The file is empty"),
        ("rows.json", b"  \n", "The file is empty"),
    ],
)  # fmt: skip
def test_malformed_pairwise_files_get_a_clear_error_naming_the_row(name, content, message):
    with pytest.raises(PairwiseFileError) as error:
        parse_pairwise_file(content, name)
    assert str(error.value).startswith(message)


def test_the_pairwise_page_shows_the_error_of_a_malformed_file(lead_client, project):
    upload = SimpleUploadedFile("rows.json", json.dumps([GOOD, 5]).encode())

    response = lead_client.post(reverse("evaluation:pairwise_import", args=[project.id]), {"file": upload})

    assert response.status_code == 200
    assert (
        "Could not import rows.json: Row 2: expected a JSON object, found &#x27;5&#x27;"
        in response.content.decode()
    )
    assert not PairwiseItem.objects.exists()


# ---------------------------------------------------------------------------------------------- size limit


def test_a_pairwise_upload_over_the_limit_is_refused_and_nothing_imported(lead_client, project, settings):
    settings.IMPORT_MAX_BYTES = 1024
    rows = [{**GOOD, "prompt": f"prompt {i}"} for i in range(100)]
    upload = SimpleUploadedFile("big.json", json.dumps(rows).encode())

    response = lead_client.post(reverse("evaluation:pairwise_import", args=[project.id]), {"file": upload})

    assert response.status_code == 413
    assert "the import limit is 0.00098 MB (IMPORT_MAX_MB)" in response.content.decode()
    assert not PairwiseItem.objects.exists()


def test_a_benchmark_test_file_over_the_limit_is_refused(lead_client, project, settings):
    settings.IMPORT_MAX_BYTES = 1024
    content = b"text,label\n" + b"a fine film,positive\n" * 100
    upload = SimpleUploadedFile("test.csv", content, content_type="text/csv")

    response = lead_client.post(
        reverse("evaluation:benchmark_start", args=[project.id]),
        {"test_fraction": "0.3", "test_file": upload},
        follow=True,
    )

    body = response.content.decode()
    assert response.redirect_chain == [(reverse("evaluation:metrics_benchmark", args=[project.id]), 302)]
    assert "Test file: The file is 0.0022 MB; the import limit is 0.00098 MB (IMPORT_MAX_MB)" in body
    assert not BenchmarkRun.objects.exists()


def test_a_label_studio_upload_over_the_limit_is_stopped_while_it_streams_in(
    lead_client, project, settings, tmp_path
):
    settings.IMPORT_MAX_BYTES = 1024
    upload = SimpleUploadedFile("export.json", json.dumps([{"data": {"text": "x" * 2000}}]).encode())

    response = lead_client.post(reverse("evaluation:labelstudio_import", args=[project.id]), {"file": upload})

    assert response.status_code == 413 and "(IMPORT_MAX_MB)" in response.content.decode()
    assert not LabelStudioImportJob.objects.exists() and not (tmp_path / "media" / "imports").exists()


def test_a_deep_label_studio_file_fails_its_job_naming_the_limit(
    lead_client, project, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile(
        "export.json", f'[{{"data": {{"text": "a", "meta": {deep_json()}}}}}]'.encode()
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:labelstudio_import", args=[project.id]), {"file": upload}
        )

    # the upload page reads the first tasks before storing anything: the limit is named at once, no job made
    assert "the JSON is nested more than 64 levels deep; the limit is 64 levels" in response.content.decode()
    assert not LabelStudioImportJob.objects.filter(project=project).exists()
    assert not Sample.objects.exists()
