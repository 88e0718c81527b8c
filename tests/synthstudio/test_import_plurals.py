"""An import of one sample says "1 sample imported" (job message and progress page), and the page points to the
next step."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from synthstudio import services
from synthstudio.importing import ColumnMapping
from synthstudio.models import JobStatus


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def test_one_imported_sample_and_one_duplicate_are_singular(
    lead_client, lead, project, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("one.csv", b"text\nA joy.\nA joy.\n")
    job = services.import_create(project=project, user=lead, upload=upload)
    with django_capture_on_commit_callbacks(execute=True):
        services.import_start(job=job, mapping=ColumnMapping(text_columns=["text"]))
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.message.startswith("Imported 1 sample; 1 exact duplicate skipped")
    body = lead_client.get(reverse("import_progress", args=[project.id, job.id])).content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
    assert (
        "1 sample imported" in text and "1 exact duplicate skipped" in text and "2 rows in the file" in text
    )
    assert "samples imported" not in text and 'id="next-step"' in body
