"""API downloads: a written export answers 200 at once, a pending one 202 with Retry-After, one whose job failed 500;
and the shell command the README and the snapshot page document never saves a 202's JSON body as the archive
(run for real with bash and curl against the live server and a real worker)."""

from __future__ import annotations

import html
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from django.urls import reverse

from annotation.review.final_labels import final_label_refresh
from evaluation.api.download_command import README_URL, download_command
from evaluation.curation import services as curation_services
from evaluation.curation.filters import FilterSettings
from evaluation.curation.services import api_token_create
from evaluation.curation.snapshots import snapshot_create
from evaluation.export.writers import export_path
from evaluation.models import ExportJob
from synthstudio.models import JobStatus, LabelMethod, LLMAnnotation

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.fixture
def snapshot(project, lead, samples):
    for sample, name in zip(samples, ["positive", "negative", "positive", "negative"], strict=True):
        LLMAnnotation.objects.create(
            sample=sample, label=name, distribution={name: 1.0}, confidence=0.9, method=LabelMethod.IMPORTED
        )
        final_label_refresh(sample=sample)
    return snapshot_create(project=project, user=lead, settings=FilterSettings())


def bearer(user) -> dict:
    _, raw = api_token_create(user=user, name="test")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def hf_url(project, snapshot) -> str:
    return reverse("api:snapshot_download", args=[project.id, snapshot.version, "hf"])


def test_a_written_export_answers_200_at_once_without_a_new_job(
    client, lead, project, snapshot, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        curation_services.export_job_start(snapshot=snapshot, file_format="hf", user=lead)
    assert export_path(snapshot, "hf").exists()
    response = client.get(hf_url(project, snapshot), **bearer(lead))
    assert response.status_code == 200 and "Retry-After" not in response
    assert (
        response["Content-Disposition"].startswith("attachment;")
        and ".zip" in response["Content-Disposition"]
    )
    assert ExportJob.objects.filter(snapshot=snapshot).count() == 1


def test_a_pending_export_answers_202_with_retry_after(client, lead, project, snapshot, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    response = client.get(hf_url(project, snapshot), **bearer(lead))  # no commit: the job stays queued
    assert response.status_code == 202 and response["Retry-After"] == "2"
    assert response.json()["status"] == "queued"


def test_an_export_that_failed_answers_500_with_its_error_not_202(
    client, lead, project, snapshot, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(curation_services, "export_file", broken)
    headers = bearer(lead)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(hf_url(project, snapshot), **headers).status_code == 202  # the worker then fails
    response = client.get(hf_url(project, snapshot), **headers)
    assert response.status_code == 500 and "Retry-After" not in response
    assert response.json()["status"] == "failed" and "disk full" in response.json()["error"]
    again = client.get(hf_url(project, snapshot), **headers)  # the job queued by the 500: a fresh attempt
    assert again.status_code == 202 and again.json()["job"] == response.json()["retry_job"]


def test_the_readme_documents_the_guarded_command():
    command = download_command(README_URL)
    assert command in README.read_text()
    assert "--fail" in command and "data.zip.part" in command and "= 202 ]" in command
    assert re.search(r"curl -L [^\n]*-o data\.zip http", README.read_text()) is None  # the old, unguarded one


def test_the_snapshot_page_shows_the_same_command_for_its_url(lead_client, project, snapshot):
    body = lead_client.get(reverse("evaluation:snapshot_detail", args=[project.id, snapshot.version])).content
    shown = html.unescape(
        re.search(r'<pre id="api-download-command"><code>(.*?)</code>', body.decode(), re.S)[1]
    )
    assert shown == download_command(f"http://testserver{hf_url(project, snapshot)}")


def run_documented_command(command: str, token: str, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.worker
def test_the_documented_command_waits_out_the_202_and_saves_the_archive(
    celery_worker_process, live_server, lead, project, snapshot, tmp_path
):
    _, token = api_token_create(user=lead, name="curl")
    url = f"{live_server.url}{hf_url(project, snapshot)}"
    folder = tmp_path / "downloads"  # tmp_path also holds the worker's log and broker files
    folder.mkdir()
    try:
        result = run_documented_command(download_command(url), token, folder)
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["data.zip"]
        assert "film-reviews-v1/README.md" in zipfile.ZipFile(folder / "data.zip").namelist()
        assert (
            ExportJob.objects.get(snapshot=snapshot).status == JobStatus.SUCCEEDED
        )  # it did go through a 202
    finally:
        export_path(snapshot, "hf").unlink(missing_ok=True)  # written under the worker's MEDIA_ROOT


@pytest.mark.worker
def test_the_documented_command_saves_nothing_as_the_archive_on_an_error(
    celery_worker_process, live_server, project, snapshot, tmp_path
):
    url = f"{live_server.url}{hf_url(project, snapshot)}"
    result = run_documented_command(download_command(url), "not-a-token", tmp_path)
    assert "download failed (HTTP 401)" in result.stderr
    assert not (tmp_path / "data.zip").exists()
