"""Curation pages as lead, annotator and outsider: filters with live counts, snapshots, exports, label
issues, Label Studio import."""

import io
import json
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import ReviewTask, TaskKind
from annotation.review.final_labels import final_label_refresh
from evaluation.curation.filters import FilterSettings
from evaluation.curation.snapshots import snapshot_create
from evaluation.models import ExportJob, LabelStudioImportJob, RefinementRun, Snapshot, SnapshotJob
from synthstudio.models import LabelMethod, LLMAnnotation, Sample


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def label(sample, name, confidence=0.9):
    other = "negative" if name == "positive" else "positive"
    LLMAnnotation.objects.create(
        sample=sample,
        label=name,
        distribution={name: confidence, other: 1 - confidence},
        confidence=confidence,
        method=LabelMethod.IMPORTED,
    )
    final_label_refresh(sample=sample)


@pytest.fixture
def labelled(project, samples):
    for sample, name in zip(samples, ["positive", "negative", "positive", "negative"], strict=True):
        label(sample, name)
    duplicate = Sample.objects.create(project=project, text="A delight from start to finish.")
    label(duplicate, "positive")
    return [*samples, duplicate]


@pytest.fixture
def snapshot(project, lead, labelled):
    return snapshot_create(project=project, user=lead, settings=FilterSettings())


def lead_only_urls(project, snapshot):
    v = snapshot.version
    return [
        reverse("evaluation:curation", args=[project.id]),
        reverse("evaluation:curation_counts", args=[project.id]),
        reverse("evaluation:snapshot_detail", args=[project.id, v]),
        reverse("evaluation:snapshot_compare", args=[project.id, v]) + f"?against={v}",
        reverse("evaluation:snapshot_download", args=[project.id, v, "jsonl"]),
        reverse("evaluation:label_issues", args=[project.id]),
        reverse("evaluation:labelstudio_import", args=[project.id]),
    ]


def test_every_curation_page_opens_for_the_lead(lead_client, project, snapshot):
    for url in lead_only_urls(project, snapshot):
        assert lead_client.get(url).status_code == 200, url


def test_annotators_get_403_on_every_curation_page(annotator_client, project, snapshot):
    for url in lead_only_urls(project, snapshot):
        assert annotator_client.get(url).status_code == 403, url
    assert annotator_client.post(reverse("evaluation:snapshot_new", args=[project.id])).status_code == 403
    assert annotator_client.post(reverse("evaluation:label_issues_run", args=[project.id])).status_code == 403


def test_outsiders_get_404_on_every_curation_page(outsider_client, project, snapshot):
    for url in lead_only_urls(project, snapshot):
        assert outsider_client.get(url).status_code == 404, url
    assert outsider_client.post(reverse("evaluation:snapshot_new", args=[project.id])).status_code == 404
    assert (
        outsider_client.post(
            reverse("evaluation:export_start", args=[project.id, snapshot.version, "parquet"])
        ).status_code
        == 404
    )


def test_the_nav_shows_curation_links_to_leads_only(client, lead, annotator, project):
    url = reverse("project_detail", args=[project.id])
    client.force_login(lead)
    assert reverse("evaluation:curation", args=[project.id]) in client.get(url).content.decode()
    client.force_login(annotator)
    assert reverse("evaluation:curation", args=[project.id]) not in client.get(url).content.decode()


def test_the_live_counts_fragment_says_what_each_filter_removes(lead_client, project, labelled):
    url = reverse("evaluation:curation_counts", args=[project.id])
    response = lead_client.get(url, {"exact_duplicates": "on", "max_chars": "40"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<strong>3</strong> of 5 samples would be kept" in html
    assert '<tr data-filter="exact_duplicates"><td>Exact duplicates</td><td>1</td></tr>' in html
    assert '<tr data-filter="length"><td>Length outside limits</td><td>1</td></tr>' in html
    assert "<html" not in html


def test_the_counts_url_opened_directly_is_a_full_page_with_the_form_filled(lead_client, project, labelled):
    response = lead_client.get(reverse("evaluation:curation_counts", args=[project.id]), {"max_chars": "40"})
    html = response.content.decode()
    assert "<html" in html and 'name="max_chars" value="40"' in html
    assert "<strong>4</strong> of 5 samples would be kept" in html  # exact duplicates off: unchecked box


def test_an_invalid_regex_shows_an_error_instead_of_counts(lead_client, project, labelled):
    response = lead_client.get(reverse("evaluation:curation_counts", args=[project.id]), {"must_match": "("})
    assert "Fix the highlighted settings" in response.content.decode()


def test_creating_a_snapshot_saves_the_settings_and_builds_it_in_a_job(
    lead_client, project, labelled, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:snapshot_new", args=[project.id]),
            {
                "exact_duplicates": "on",
                "drop_flagged": "on",
                "min_chars": "0",
                "split": "80/20",
                "note": "first",
                "licence": "mit",
            },
        )
    job = SnapshotJob.objects.get(project=project)
    snapshot = Snapshot.objects.get(project=project)
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluation:snapshot_job", args=[project.id, job.pk])
    assert (job.status, job.snapshot, job.done, job.total) == ("succeeded", snapshot, 4, 4)
    assert (snapshot.item_count, snapshot.note, snapshot.licence, snapshot.is_ready) == (
        4,
        "first",
        "mit",
        True,
    )
    assert snapshot.split_fractions == {"train": 0.8, "test": 0.2}
    page = lead_client.get(response["Location"]).content.decode()
    assert reverse("evaluation:snapshot_detail", args=[project.id, snapshot.version]) in page
    assert (
        lead_client.get(reverse("evaluation:curation", args=[project.id]))
        .context["form"]
        .initial["exact_duplicates"]
    )


def test_a_queued_snapshot_job_page_polls_and_reloads_without_js(lead_client, project, labelled):
    lead_client.post(
        reverse("evaluation:snapshot_new", args=[project.id]), {"min_chars": "0", "licence": "mit"}
    )
    job = SnapshotJob.objects.get(project=project)  # no commit in this test: the job stays queued
    progress_url = reverse("evaluation:snapshot_job_progress", args=[project.id, job.pk])
    page = lead_client.get(reverse("evaluation:snapshot_job", args=[project.id, job.pk])).content.decode()
    assert f'hx-get="{progress_url}"' in page
    assert '<meta http-equiv="refresh"' in page
    fragment = lead_client.get(progress_url, HTTP_HX_REQUEST="true")
    assert "Queued" in fragment.content.decode() and "<html" not in fragment.content.decode()
    assert not Snapshot.objects.ready().exists()
    curation_page = lead_client.get(reverse("evaluation:curation", args=[project.id])).content.decode()
    assert reverse("evaluation:snapshot_job", args=[project.id, job.pk]) in curation_page


def statuses_by_role(url: str, lead, annotator, outsider) -> tuple[int, int, int]:
    """The status each of the three users gets (one client each: the shared client fixtures are one object)."""
    codes = []
    for user in (lead, annotator, outsider):
        browser = Client()
        browser.force_login(user)
        codes.append(browser.get(url).status_code)
    return codes[0], codes[1], codes[2]


def test_snapshot_job_pages_are_for_leads_only(lead, annotator, outsider, project):
    job = SnapshotJob.objects.create(project=project, created_by=lead)
    for name in ("evaluation:snapshot_job", "evaluation:snapshot_job_progress"):
        assert statuses_by_role(reverse(name, args=[project.id, job.pk]), lead, annotator, outsider) == (
            200,
            403,
            404,
        )


def test_a_bad_snapshot_form_is_shown_again_with_errors(lead_client, project, labelled):
    response = lead_client.post(
        reverse("evaluation:snapshot_new", args=[project.id]), {"must_not_match": "[a-"}
    )
    assert response.status_code == 400
    assert "Not a valid regular expression" in response.content.decode()
    assert not Snapshot.objects.exists()


def test_jsonl_downloads_stream_the_snapshot_rows(lead_client, project, snapshot):
    response = lead_client.get(
        reverse("evaluation:snapshot_download", args=[project.id, snapshot.version, "jsonl"])
    )
    assert response.streaming
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(rows) == snapshot.item_count == 4
    assert 'filename="film-reviews-v1.jsonl"' in response["Content-Disposition"]


def test_a_parquet_export_runs_as_a_job_then_downloads(
    lead_client, project, snapshot, django_capture_on_commit_callbacks
):
    download = reverse("evaluation:snapshot_download", args=[project.id, snapshot.version, "parquet"])
    assert lead_client.get(download).status_code == 302  # not written yet
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:export_start", args=[project.id, snapshot.version, "parquet"])
        )
    job = ExportJob.objects.get()
    assert response["Location"] == reverse("evaluation:export_job", args=[project.id, job.pk])
    assert (job.status, job.done, job.total) == ("succeeded", 4, 4)
    page = lead_client.get(response["Location"]).content.decode()
    assert "download-export" in page
    progress = lead_client.get(
        reverse("evaluation:export_job_progress", args=[project.id, job.pk]), HTTP_HX_REQUEST="true"
    )
    assert progress["HX-Refresh"] == "true"
    file_response = lead_client.get(download)
    assert file_response.status_code == 200
    assert b"".join(file_response.streaming_content)[:4] == b"PAR1"


def test_the_diff_page_lists_relabelled_items(lead_client, project, lead, labelled, annotator, snapshot):
    from synthstudio.models import HumanAnnotation, HumanSource

    HumanAnnotation.objects.create(
        sample=labelled[0], annotator=annotator, label="negative", source=HumanSource.REVIEW
    )
    final_label_refresh(sample=labelled[0])
    second = snapshot_create(project=project, user=lead, settings=FilterSettings())
    response = lead_client.get(
        reverse("evaluation:snapshot_compare", args=[project.id, second.version]), {"against": 1}
    )
    assert response.context["counts"] == {"added": 0, "removed": 0, "relabelled": 1, "text_changed": 0}


def separable_project(project, n=30):
    """Sentiment texts whose LLM labels are right except three flipped ones."""
    positives = [f"A wonderful, joyful and brilliant film number {i}, I loved it." for i in range(n)]
    negatives = [f"A terrible, boring and awful film number {i}, I hated it." for i in range(n)]
    flipped = []
    for i, text in enumerate(positives + negatives):
        truth = "positive" if i < n else "negative"
        wrong = i in (3, n + 5, n + 9)
        sample = Sample.objects.create(project=project, text=text)
        label(sample, ("negative" if truth == "positive" else "positive") if wrong else truth, 0.8)
        if wrong:
            flipped.append(sample.id)
    return flipped


def test_the_label_issue_run_ranks_flipped_labels_and_sends_them_to_review(
    lead_client, project, django_capture_on_commit_callbacks
):
    flipped = separable_project(project)
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(reverse("evaluation:label_issues_run", args=[project.id]))
    assert response.status_code == 302
    run = RefinementRun.objects.get()
    assert run.status == "succeeded", run.error
    top = [issue["sample_id"] for issue in run.result["issues"][:3]]
    assert set(top) == set(flipped)
    page = lead_client.get(reverse("evaluation:label_issues", args=[project.id])).content.decode()
    assert "Send selected to review" in page
    lead_client.post(reverse("evaluation:label_issues_send", args=[project.id, run.pk]), {"sample": top})
    tasks = ReviewTask.objects.filter(project=project, kind=TaskKind.LABEL_ISSUE)
    assert sorted(tasks.values_list("sample_id", flat=True)) == sorted(top)
    lead_client.post(reverse("evaluation:label_issues_send", args=[project.id, run.pk]), {"sample": top})
    assert tasks.count() == 3  # not queued twice
    assert "queued" in lead_client.get(reverse("evaluation:label_issues", args=[project.id])).content.decode()


def test_too_few_labelled_samples_say_so(lead_client, project, samples, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        lead_client.post(reverse("evaluation:label_issues_run", args=[project.id]))
    assert "Too few labelled samples" in RefinementRun.objects.get().message


def upload_file(content: bytes) -> io.BytesIO:
    upload = io.BytesIO(content)
    upload.name = "export.json"
    return upload


def test_the_label_studio_upload_imports_tasks_in_a_job(
    lead_client, project, django_capture_on_commit_callbacks
):
    tasks = [
        {"data": {"text": "Great!"}, "annotations": [{"result": [{"value": {"choices": ["positive"]}}]}]}
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:labelstudio_import", args=[project.id]),
            {"file": upload_file(json.dumps(tasks).encode())},
        )
    job = LabelStudioImportJob.objects.get(project=project)
    assert response["Location"] == reverse("evaluation:labelstudio_import_job", args=[project.id, job.pk])
    assert job.status == "succeeded"
    assert (job.counts["tasks"], job.counts["annotations"], job.counts["predictions"]) == (1, 1, 0)
    sample = Sample.objects.get(project=project)
    assert (sample.text, sample.final_label, sample.final_source) == ("Great!", "positive", "human")
    assert not Path(job.stored_path).exists()  # the upload is deleted once imported
    assert "Imported 1 tasks" in lead_client.get(response["Location"]).content.decode()


def test_a_label_studio_upload_that_is_not_json_imports_nothing(
    lead_client, project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:labelstudio_import", args=[project.id]), {"file": upload_file(b"not json")}
        )
    assert "Nothing was imported" in response.content.decode()  # refused on the upload page, nothing stored
    assert not Sample.objects.filter(project=project).exists()


def test_a_broken_task_imports_nothing_and_the_error_names_it(
    lead_client, project, django_capture_on_commit_callbacks
):
    # the upload page checks the first five tasks; a later broken task fails the worker's job
    tasks = [{"id": 7 + n, "data": {"text": f"Fine {n}."}} for n in range(1, 6)]
    tasks.append({"id": 13, "data": {"image": ""}})
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            reverse("evaluation:labelstudio_import", args=[project.id]),
            {"file": upload_file(json.dumps(tasks).encode())},
        )
    job = LabelStudioImportJob.objects.get(project=project)
    assert (job.status, job.bad_task) == ("failed", 6)
    assert "Task 6 (id 13) has no `text` key" in lead_client.get(response["Location"]).content.decode()
    assert not Sample.objects.filter(project=project).exists()


def test_label_studio_import_job_pages_are_for_leads_only(lead, annotator, outsider, project):
    job = LabelStudioImportJob.objects.create(
        project=project, created_by=lead, original_name="x.json", stored_path=""
    )
    for name in ("evaluation:labelstudio_import_job", "evaluation:labelstudio_import_job_progress"):
        assert statuses_by_role(reverse(name, args=[project.id, job.pk]), lead, annotator, outsider) == (
            200,
            403,
            404,
        )


def test_a_label_studio_upload_over_the_size_limit_is_refused(lead_client, project, settings):
    settings.IMPORT_MAX_BYTES = 10
    upload = io.BytesIO(b'[{"data": {"text": "too big for the limit"}}]')
    upload.name = "export.json"
    response = lead_client.post(reverse("evaluation:labelstudio_import", args=[project.id]), {"file": upload})
    assert "IMPORT_MAX_MB" in response.content.decode()
    assert not Sample.objects.filter(project=project).exists()


def test_annotators_cannot_import_or_send_to_review(annotator_client, project):
    run = RefinementRun.objects.create(project=project, result={"issues": []})
    assert (
        annotator_client.post(reverse("evaluation:labelstudio_import", args=[project.id])).status_code == 403
    )
    assert (
        annotator_client.post(reverse("evaluation:label_issues_send", args=[project.id, run.pk])).status_code
        == 403
    )
    assert (
        annotator_client.get(
            reverse("evaluation:label_issues_progress", args=[project.id, run.pk])
        ).status_code
        == 403
    )


def test_a_finished_label_studio_import_run_again_imports_nothing_more(lead, project, tmp_path):
    from evaluation.tasks import labelstudio_import_task

    stored = tmp_path / "upload.json"
    stored.write_text(json.dumps([{"data": {"text": "Once only."}}]))
    job = LabelStudioImportJob.objects.create(
        project=project, created_by=lead, original_name="u.json", stored_path=str(stored)
    )
    labelstudio_import_task(job.pk)
    labelstudio_import_task(job.pk)  # a redelivered message
    assert Sample.objects.filter(project=project, text="Once only.").count() == 1


def test_sending_label_issues_refuses_ids_that_are_not_issues_of_the_run(lead_client, project, samples):
    run = RefinementRun.objects.create(
        project=project, status="succeeded",
        result={"issues": [{"sample_id": samples[0].id, "suggested": "negative", "margin": 0.5}]},
    )  # fmt: skip
    url = reverse("evaluation:label_issues_send", args=[project.id, run.pk])
    for bad in ("²", "1 OR 1=1", str(samples[1].id)):  # "²".isdigit() is True, int("²") fails
        response = lead_client.post(url, {"sample": [str(samples[0].id), bad]}, follow=True)
        assert response.redirect_chain == [(reverse("evaluation:label_issues", args=[project.id]), 302)]
        assert "Choose label issues of this run." in response.content.decode()
    assert not ReviewTask.objects.filter(project=project, kind=TaskKind.LABEL_ISSUE).exists()
    lead_client.post(url, {"sample": [str(samples[0].id)]})
    assert list(ReviewTask.objects.filter(kind=TaskKind.LABEL_ISSUE).values_list("sample_id", flat=True)) == [
        samples[0].id
    ]
