"""HTTP API: token auth, access rules (leads only; outsiders 404), listing and downloading snapshots."""

import io
import json
import zipfile

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from annotation.review.final_labels import final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.curation.services import api_token_create
from evaluation.curation.snapshots import snapshot_create
from evaluation.models import ApiToken, ExportJob, Snapshot
from synthstudio.models import LabelMethod, LLMAnnotation, Project


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


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


def download_url(project, snapshot, file_format):
    return reverse("api:snapshot_download", args=[project.id, snapshot.version, file_format])


def test_it_lists_the_snapshots_of_a_project_the_token_owner_leads(client, lead, project, snapshot):
    response = client.get(reverse("api:snapshots", args=[project.id]), **bearer(lead))
    assert response.status_code == 200
    (listed,) = response.json()["snapshots"]
    assert (listed["version"], listed["items"], listed["label_policy"]) == (1, 4, snapshot.label_policy)
    assert listed["downloads"]["parquet"].endswith(download_url(project, snapshot, "parquet"))


def test_it_lists_the_projects_with_the_role(client, lead, annotator, project):
    assert client.get(reverse("api:projects"), **bearer(annotator)).json() == {
        "projects": [{"id": project.id, "name": "Film reviews", "role": "annotator"}]
    }


def test_it_downloads_every_format(client, lead, project, snapshot, django_capture_on_commit_callbacks):
    headers = bearer(lead)
    jsonl = b"".join(client.get(download_url(project, snapshot, "jsonl"), **headers).streaming_content)
    assert len(jsonl.decode().splitlines()) == 4
    csv_text = b"".join(
        client.get(download_url(project, snapshot, "csv"), **headers).streaming_content
    ).decode()
    assert csv_text.splitlines()[0].startswith("id,text,label")
    tasks = json.loads(
        b"".join(client.get(download_url(project, snapshot, "labelstudio"), **headers).streaming_content)
    )
    assert len(tasks) == 4
    parquet = file_after_polling(
        client, download_url(project, snapshot, "parquet"), headers, django_capture_on_commit_callbacks
    )
    assert pq.read_table(io.BytesIO(parquet)).num_rows == 4
    archive = file_after_polling(
        client, download_url(project, snapshot, "hf"), headers, django_capture_on_commit_callbacks
    )
    assert "film-reviews-v1/README.md" in zipfile.ZipFile(io.BytesIO(archive)).namelist()


def file_after_polling(client, url: str, headers: dict, capture_on_commit) -> bytes:
    """What an API client does: a 202 names the job to poll; once it has succeeded the same URL gives the file."""
    with capture_on_commit(execute=True):  # the eager worker runs when the request's work commits
        accepted = client.get(url, **headers)
    assert accepted.status_code == 202
    assert accepted["Retry-After"] == "2"
    body = accepted.json()
    assert body["status"] == "queued" and body["download"].endswith(url)
    assert client.get(body["poll"], **headers).json()["status"] == "succeeded"
    response = client.get(url, **headers)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_a_file_not_written_yet_answers_202_and_starts_one_job_only(client, lead, project, snapshot):
    headers = bearer(lead)
    url = download_url(project, snapshot, "parquet")
    first, second = client.get(url, **headers), client.get(url, **headers)  # no commit: the job stays queued
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["job"] == second.json()["job"]
    assert ExportJob.objects.filter(snapshot=snapshot).count() == 1


def test_the_export_job_status_follows_the_snapshot_access_rules(
    client, lead, annotator, outsider, project, snapshot
):
    job_url = client.get(download_url(project, snapshot, "parquet"), **bearer(lead)).json()["poll"]
    assert client.get(job_url, **bearer(lead)).json()["status"] == "queued"
    assert client.get(job_url, **bearer(annotator)).status_code == 403
    assert client.get(job_url, **bearer(outsider)).status_code == 404


def test_a_snapshot_still_being_built_is_neither_listed_nor_downloadable(client, lead, project, snapshot):
    Snapshot.objects.filter(pk=snapshot.pk).update(is_ready=False)
    headers = bearer(lead)
    assert client.get(reverse("api:snapshots", args=[project.id]), **headers).json()["snapshots"] == []
    assert client.get(download_url(project, snapshot, "jsonl"), **headers).status_code == 404


def test_it_rejects_a_missing_token_with_401(client, project, snapshot):
    response = client.get(reverse("api:snapshots", args=[project.id]))
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]


def test_it_rejects_a_wrong_token_with_401(client, project, snapshot):
    response = client.get(
        reverse("api:snapshots", args=[project.id]), HTTP_AUTHORIZATION="Bearer ssk_not-a-real-token"
    )
    assert response.status_code == 401


def test_it_rejects_a_revoked_token(client, lead, lead_client, project, snapshot):
    headers = bearer(lead)
    token = ApiToken.objects.get(user=lead)
    lead_client.post(reverse("api:token_revoke", args=[token.pk]))
    assert client.get(reverse("api:snapshots", args=[project.id]), **headers).status_code == 401


def test_it_forbids_annotators_with_403(client, annotator, project, snapshot):
    headers = bearer(annotator)
    assert client.get(reverse("api:snapshots", args=[project.id]), **headers).status_code == 403
    assert client.get(download_url(project, snapshot, "jsonl"), **headers).status_code == 403


def test_it_hides_projects_from_outsiders_with_404(client, outsider, project, snapshot):
    headers = bearer(outsider)
    assert client.get(reverse("api:snapshots", args=[project.id]), **headers).status_code == 404
    assert client.get(download_url(project, snapshot, "jsonl"), **headers).status_code == 404


def test_a_lead_of_another_project_cannot_reach_this_one(client, outsider, project, snapshot):
    from synthstudio.services import project_create

    project_create(name="Outsider's own", user=outsider)
    response = client.get(download_url(project, snapshot, "parquet"), **bearer(outsider))
    assert response.status_code == 404


def test_an_unknown_format_or_version_is_404(client, lead, project, snapshot):
    headers = bearer(lead)
    assert client.get(download_url(project, snapshot, "xlsx"), **headers).status_code == 404
    missing = reverse("api:snapshot_detail", args=[project.id, 99])
    assert client.get(missing, **headers).status_code == 404


def test_only_the_token_hash_is_stored(lead):
    token, raw = api_token_create(user=lead, name="ci")
    assert raw not in {token.token_hash, token.prefix}
    assert raw.startswith(token.prefix)


def test_the_token_page_shows_a_new_token_once_and_lists_it_for_its_owner_only(
    client, lead, annotator, outsider
):
    client.force_login(lead)
    response = client.post(reverse("api:tokens"), {"name": "cluster"})
    assert "ssk_" in response.context["new_token"]
    assert response.context["new_token"] not in client.get(reverse("api:tokens")).content.decode()
    for user in (annotator, outsider):
        client.force_login(user)
        assert "cluster" not in client.get(reverse("api:tokens")).content.decode()


def test_a_user_cannot_revoke_someone_elses_token(client, lead, outsider):
    token, _ = api_token_create(user=lead, name="mine")
    client.force_login(outsider)
    assert client.post(reverse("api:token_revoke", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_the_token_page_needs_a_login(client):
    assert client.get(reverse("api:tokens")).status_code == 302


def test_a_logged_in_lead_can_use_the_api_from_the_browser(lead_client, project, snapshot):
    assert lead_client.get(reverse("api:snapshot_detail", args=[project.id, 1])).json()["items"] == 4


def test_projects_of_others_are_not_listed(client, outsider, project):
    Project.objects.create(name="Not mine")
    assert client.get(reverse("api:projects"), **bearer(outsider)).json() == {"projects": []}
