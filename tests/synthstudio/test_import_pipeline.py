"""Import through the service and the pages: all-or-nothing, duplicates, formats, size limit, access."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from synthstudio import services
from synthstudio.importing import ColumnMapping
from synthstudio.models import HumanAnnotation, ImportJob, JobStatus, LabelMethod, LLMAnnotation, Sample


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def run_import(project, lead, name: str, content: bytes, capture, **mapping) -> ImportJob:
    mapping.setdefault("text_columns", ["text"])
    job = services.import_create(project=project, user=lead, upload=SimpleUploadedFile(name, content))
    with capture(execute=True):
        services.import_start(job=job, mapping=ColumnMapping(**mapping))
    job.refresh_from_db()
    return job


def database_counts() -> tuple[int, int, int]:
    return Sample.objects.count(), LLMAnnotation.objects.count(), HumanAnnotation.objects.count()


LABELLED_CSV = (
    b"text,gold,llm,conf,dist\n"
    b'Loved every minute.,positive,positive,0.9,"{""positive"": 0.9, ""negative"": 0.1}"\n'
    b"Utterly boring.,,negative,,\n"
    b'Not sure what to think.,,,,"{""positive"": 1, ""negative"": 3}"\n'
)
LABEL_MAPPING = {
    "gold_label_column": "gold",
    "llm_label_column": "llm",
    "llm_confidence_column": "conf",
    "llm_distribution_column": "dist",
}


def test_it_imports_texts_gold_labels_and_llm_annotations(project, lead, django_capture_on_commit_callbacks):
    job = run_import(
        project, lead, "reviews.csv", LABELLED_CSV, django_capture_on_commit_callbacks, **LABEL_MAPPING
    )

    assert (job.status, job.imported, job.duplicates, job.error) == (JobStatus.SUCCEEDED, 3, 0, "")
    loved, boring, unsure = Sample.objects.filter(project=project).order_by("id")
    assert loved.text == "Loved every minute." and loved.origin == "imported"
    assert loved.provenance == {"import_job": job.id, "file": "reviews.csv", "row": 1}
    gold = HumanAnnotation.objects.get()
    assert (gold.sample, gold.label, gold.source, gold.codebook) == (
        loved,
        "positive",
        "imported",
        project.codebook,
    )
    llm = {a.sample_id: a for a in LLMAnnotation.objects.all()}
    assert llm[loved.id].method == LabelMethod.IMPORTED and llm[loved.id].confidence == 0.9
    assert (llm[boring.id].label, llm[boring.id].confidence, llm[boring.id].distribution) == (
        "negative",
        None,
        {},
    )
    assert llm[unsure.id].distribution == {"positive": 0.25, "negative": 0.75}
    assert (llm[unsure.id].label, llm[unsure.id].confidence) == ("negative", 0.75)
    assert (loved.final_label, loved.final_source, loved.final_weight) == ("positive", "human", 1.0)
    assert (unsure.final_label, unsure.final_source, unsure.final_weight) == ("negative", "llm", 0.75)


BAD_FILES = [
    (
        "bad encoding",
        "a.csv",
        b"text,gold\nfine,positive\nok,negative\nbad \xff,positive\n",
        3,
        "bad encoding",
    ),
    (
        "missing column",
        "a.jsonl",
        b'{"text": "a", "gold": "positive"}\n{"gold": "negative"}\n',
        2,
        "missing column 'text'",
    ),
    (
        "label not in codebook",
        "a.tsv",
        b"text\tgold\na\tpositive\nb\tneutral\n",
        2,
        "'neutral' in column 'gold' is not in the codebook",
    ),
    ("malformed JSON", "a.jsonl", b'{"text": "a"}\n{"text": "b"}\n{"text": "c", }\n', 3, "malformed JSON"),
    ("malformed JSON array", "a.json", b'[{"text": "a"}, {"text": "b" "gold": 1}]', 2, "malformed JSON"),
    ("empty text", "a.csv", b"text,gold\na,positive\n  ,negative\n", 2, "empty text"),
    ("bad confidence", "a.csv", b"text,llm,conf\na,positive,0.5\nb,negative,2\n", 2, "bad confidence"),
    (
        "bad distribution JSON",
        "a.csv",
        b'text,dist\na,"{""positive"": 1}"\nb,"{oops"\n',
        2,
        "malformed JSON in 'dist'",
    ),
]


@pytest.mark.parametrize(
    ("kind", "name", "content", "bad_row", "reason"), BAD_FILES, ids=[f[0] for f in BAD_FILES]
)
def test_it_imports_nothing_from_a_file_with_a_bad_row_and_names_the_row(
    project, lead, samples, django_capture_on_commit_callbacks, kind, name, content, bad_row, reason
):
    before = database_counts()
    columns = {
        "llm": "llm_label_column",
        "conf": "llm_confidence_column",
        "dist": "llm_distribution_column",
        "gold": "gold_label_column",
    }
    mapping = {role: column for column, role in columns.items() if column.encode() in content.split(b"\n")[0]}
    if name.endswith(("jsonl", "json")):
        mapping = {"gold_label_column": "gold"} if b"gold" in content else {}

    job = run_import(project, lead, name, content, django_capture_on_commit_callbacks, **mapping)

    assert database_counts() == before
    assert job.status == JobStatus.FAILED and job.bad_row == bad_row
    assert f"Row {bad_row}" in job.error and reason in job.error and "Nothing was imported" in job.error


def test_it_reports_and_skips_exact_duplicates(project, lead, samples, django_capture_on_commit_callbacks):
    content = "\n".join(
        json.dumps({"text": text})
        for text in ["A brand new review.", "A brand new review.", samples[0].text, "Another new one."]
    ).encode()

    job = run_import(project, lead, "dups.jsonl", content, django_capture_on_commit_callbacks)

    assert (job.imported, job.duplicates, job.total) == (2, 2, 4)
    assert "2 exact duplicates skipped" in job.message
    assert Sample.objects.filter(project=project, text="A brand new review.").count() == 1


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("f.csv", b"text,gold\nOne,positive\nTwo,negative\n"),
        ("f.tsv", b"text\tgold\nOne\tpositive\nTwo\tnegative\n"),
        ("f.jsonl", b'{"text": "One", "gold": "positive"}\n{"text": "Two", "gold": "negative"}\n'),
        ("f.json", b'[{"text": "One", "gold": "positive"}, {"text": "Two", "gold": "negative"}]'),
    ],
)
def test_it_imports_every_supported_format(project, lead, django_capture_on_commit_callbacks, name, content):
    job = run_import(
        project, lead, name, content, django_capture_on_commit_callbacks, gold_label_column="gold"
    )

    assert job.status == JobStatus.SUCCEEDED
    assert list(Sample.objects.filter(project=project).values_list("text", "final_label")) == [
        ("One", "positive"),
        ("Two", "negative"),
    ]


def test_it_joins_several_text_fields_and_keeps_them(project, lead, django_capture_on_commit_callbacks):
    content = b"question,answer,channel\nWhere is my order?,It ships today.,email\n"
    run_import(project, lead, "qa.csv", content, django_capture_on_commit_callbacks,
               text_columns=["question", "answer"], field_columns=["channel"])  # fmt: skip

    sample = Sample.objects.get(project=project)
    assert sample.text == "question: Where is my order?\nanswer: It ships today."
    assert sample.fields == {
        "question": "Where is my order?",
        "answer": "It ships today.",
        "channel": "email",
    }


def test_it_does_nothing_when_a_finished_import_runs_again(project, lead, django_capture_on_commit_callbacks):
    job = run_import(project, lead, "f.csv", b"text\nOnly one.\n", django_capture_on_commit_callbacks)

    services.import_run(job=job)

    assert Sample.objects.filter(project=project).count() == 1


# ---------------------------------------------------------------------------------------------- pages


def test_it_walks_the_lead_through_upload_mapping_and_progress(
    lead_client, project, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("reviews.csv", LABELLED_CSV, content_type="text/csv")
    response = lead_client.post(reverse("import_upload", args=[project.id]), {"file": upload})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "import_mapping", args=[project.id, job.id]
    )

    page = lead_client.get(reverse("import_mapping", args=[project.id, job.id])).content.decode()
    assert "Loved every minute." in page and "Map columns" in page
    assert 'value="gold" selected' in page  # the gold column is guessed from its name

    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("import_mapping", args=[project.id, job.id]),
            {"text_columns": ["text"], "gold_label_column": "gold", "llm_label_column": "llm",
             "llm_confidence_column": "conf", "llm_distribution_column": "dist"},
        )  # fmt: skip
    assert response.status_code == 302
    progress = lead_client.get(response["Location"]).content.decode()
    assert "Succeeded" in progress and "samples imported" in progress
    assert Sample.objects.filter(project=project).count() == 3


def test_it_answers_the_progress_poll_with_the_job_fragment(
    lead_client, project, lead, django_capture_on_commit_callbacks
):
    job = run_import(project, lead, "f.csv", b"text\nOne.\n", django_capture_on_commit_callbacks)

    response = lead_client.get(reverse("import_progress", args=[project.id, job.id]), HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert f'id="job-{job.id}"' in body and "<html" not in body
    assert '<div class="big">1</div>sample imported' in body  # one sample: singular


def test_it_refuses_an_upload_over_the_size_limit(lead_client, project, settings):
    settings.IMPORT_MAX_BYTES = 50
    upload = SimpleUploadedFile("big.csv", b"text\n" + b"x" * 200 + b"\n")

    response = lead_client.post(reverse("import_upload", args=[project.id]), {"file": upload})

    assert response.status_code in (200, 413)
    assert "the import limit is" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_it_refuses_a_file_it_cannot_read_the_format_of(lead_client, project):
    upload = SimpleUploadedFile("data.xlsx", b"PK\x03\x04")

    response = lead_client.post(reverse("import_upload", args=[project.id]), {"file": upload})

    assert "Cannot tell the format" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_it_shows_why_a_file_cannot_be_previewed(lead_client, project, lead):
    job = services.import_create(
        project=project, user=lead, upload=SimpleUploadedFile("x.json", b'{"text": 1}')
    )

    page = lead_client.get(reverse("import_mapping", args=[project.id, job.id])).content.decode()

    assert "This file cannot be imported" in page and "array of objects" in page


def test_it_refuses_label_columns_that_double_as_text(lead_client, project, lead):
    job = services.import_create(
        project=project, user=lead, upload=SimpleUploadedFile("x.csv", b"text,gold\na,positive\n")
    )

    response = lead_client.post(
        reverse("import_mapping", args=[project.id, job.id]),
        {"text_columns": ["gold"], "gold_label_column": "gold"},
    )

    assert response.status_code == 200 and "already a text column" in response.content.decode()
    assert ImportJob.objects.get().mapping == {}


def import_urls(project, job) -> list[str]:
    return [
        reverse("import_upload", args=[project.id]),
        reverse("import_mapping", args=[project.id, job.id]),
        reverse("import_progress", args=[project.id, job.id]),
    ]


@pytest.fixture
def pending_job(project, lead):
    return services.import_create(
        project=project, user=lead, upload=SimpleUploadedFile("x.csv", b"text\na\n")
    )


def test_it_forbids_annotators_every_import_page(annotator_client, project, pending_job):
    assert [annotator_client.get(url).status_code for url in import_urls(project, pending_job)] == [
        403,
        403,
        403,
    ]
    upload = SimpleUploadedFile("x.csv", b"text\na\n")
    assert (
        annotator_client.post(reverse("import_upload", args=[project.id]), {"file": upload}).status_code
        == 403
    )


def test_it_hides_import_pages_from_outsiders(outsider_client, project, pending_job):
    assert [outsider_client.get(url).status_code for url in import_urls(project, pending_job)] == [
        404,
        404,
        404,
    ]


def test_it_sends_anonymous_visitors_of_import_pages_to_login(client, project, pending_job):
    for url in import_urls(project, pending_job):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_it_hides_another_projects_import_job_from_its_lead(lead_client, project, lead, pending_job):
    other = services.project_create(name="Other", user=lead)
    assert lead_client.get(reverse("import_progress", args=[other.id, pending_job.id])).status_code == 404


def test_it_still_checks_csrf_on_the_upload(client, lead, project):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(lead)

    response = csrf_client.post(
        reverse("import_upload", args=[project.id]), {"file": SimpleUploadedFile("a.csv", b"text\na\n")}
    )

    assert response.status_code == 403 and not ImportJob.objects.exists()


def test_it_stops_reading_an_oversized_upload_and_stores_nothing(lead_client, project, settings, tmp_path):
    settings.IMPORT_MAX_BYTES = 100 * 1024
    upload = SimpleUploadedFile("big.jsonl", b'{"text": "' + b"x" * (400 * 1024) + b'"}\n')

    response = lead_client.post(reverse("import_upload", args=[project.id]), {"file": upload})

    assert response.status_code == 413 and "the import limit is 0 MB" not in response.content.decode()
    assert "IMPORT_MAX_MB" in response.content.decode()
    assert not ImportJob.objects.exists() and not (tmp_path / "imports").exists()


def test_it_reports_checking_progress_with_an_estimated_total(
    project, lead, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(services, "IMPORT_BATCH_ROWS", 10)
    monkeypatch.setattr(services, "IMPORT_PROGRESS_EVERY", 10)
    reports: list[dict] = []
    original = ImportJob.report_progress
    monkeypatch.setattr(
        ImportJob,
        "report_progress",
        lambda job, **counts: (reports.append(counts), original(job, **counts))[1],
    )
    content = "".join(json.dumps({"text": f"Review number {i}"}) + "\n" for i in range(40)).encode()

    job = run_import(project, lead, "many.jsonl", content, django_capture_on_commit_callbacks)

    checking = [r for r in reports if r.get("total")]
    assert [r["done"] for r in checking] == [10, 20, 30, 40]
    assert all(r["done"] <= r["total"] for r in checking) and checking[-1]["total"] == 40
    assert reports[len(checking)] == {"done": 40, "total": 0}  # writing: indeterminate
    assert (job.done, job.total, job.imported) == (40, 40, 40)


def test_it_guesses_the_mapping_from_usual_column_names():
    from synthstudio.forms import ImportMappingForm

    guess = ImportMappingForm.guess_initial(
        ["id", "text", "gold", "llm_label", "llm_confidence", "llm_probs"]
    )

    assert guess == {
        "text_columns": ["text"],
        "gold_label_column": "gold",
        "llm_label_column": "llm_label",
        "llm_confidence_column": "llm_confidence",
        "llm_distribution_column": "llm_probs",
    }
    assert ImportMappingForm.guess_initial(["question", "intent"]) == {
        "text_columns": ["question"],
        "gold_label_column": "intent",
    }
