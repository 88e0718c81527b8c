"""Every core page as lead, annotator, outsider and anonymous visitor, and what the lead pages do."""

from __future__ import annotations

import pytest
from django.urls import reverse

from synthstudio.models import Codebook, Membership, Project, Role, Sample, WorkerHeartbeat
from tests.conftest import make_user

MEMBER_PAGES = ["project_detail", "codebook_detail"]
LEAD_PAGES = ["project_settings", "codebook_edit", "members", "sample_list", "import_upload"]


def project_url(name: str, project: Project) -> str:
    return reverse(name, args=[project.id])


@pytest.mark.parametrize("name", MEMBER_PAGES + LEAD_PAGES)
def test_it_shows_the_lead_every_project_page(lead_client, project, samples, name):
    response = lead_client.get(project_url(name, project))
    assert response.status_code == 200
    assert project.name in response.content.decode()


@pytest.mark.parametrize("name", MEMBER_PAGES)
def test_it_shows_annotators_the_member_pages(annotator_client, project, name):
    assert annotator_client.get(project_url(name, project)).status_code == 200


@pytest.mark.parametrize("name", LEAD_PAGES)
def test_it_forbids_annotators_every_lead_page(annotator_client, project, name):
    assert annotator_client.get(project_url(name, project)).status_code == 403


@pytest.mark.parametrize("name", MEMBER_PAGES + LEAD_PAGES)
def test_it_hides_every_project_page_from_outsiders(outsider_client, project, name):
    assert outsider_client.get(project_url(name, project)).status_code == 404


@pytest.mark.parametrize("name", MEMBER_PAGES + LEAD_PAGES)
def test_it_sends_anonymous_visitors_to_login(client, project, name):
    response = client.get(project_url(name, project))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["home", "project_new", "worker_status", "password_change"])
def test_it_sends_anonymous_visitors_of_account_pages_to_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("project_settings", {"name": "Hijacked", "reservation_minutes": 5}),
        ("codebook_edit", {"task_description": "x"}),
        ("members", {"username": "olga_outsider", "role": "lead"}),
    ],
)
def test_it_refuses_lead_actions_from_annotators_and_outsiders(
    client, annotator, outsider, project, name, data
):
    for user, status in ((annotator, 403), (outsider, 404)):
        client.force_login(user)
        assert client.post(project_url(name, project), data).status_code == status
    project.refresh_from_db()
    assert project.name == "Film reviews" and project.codebooks.count() == 1
    assert not Membership.objects.filter(user=outsider).exists()


def test_it_lists_only_the_users_own_projects(client, outsider, project):
    own = Project.objects.create(name="Outsider's own")
    Membership.objects.create(project=own, user=outsider, role=Role.LEAD)
    client.force_login(outsider)

    page = client.get(reverse("home")).content.decode()

    assert "Outsider&#x27;s own" in page and "Film reviews" not in page


def test_it_creates_a_project_with_its_creator_as_lead(outsider_client, outsider, settings):
    settings.PROJECT_CREATORS = (
        "everyone"  # by default only staff create projects (test_endpoint_security.py)
    )
    response = outsider_client.post(reverse("project_new"), {"name": "Intent triage", "description": ""})

    project = Project.objects.get(name="Intent triage")
    assert response["Location"] == reverse("codebook_edit", args=[project.id])
    assert project.role_of(outsider) == Role.LEAD


def codebook_post(task: str, labels: list[tuple[str, str]]) -> dict:
    data = {
        "task_description": task,
        "guidelines": "Read **everything**.",
        "labels-TOTAL_FORMS": str(len(labels)),
        "labels-INITIAL_FORMS": "0",
    }
    for index, (name, description) in enumerate(labels):
        data[f"labels-{index}-name"] = name
        data[f"labels-{index}-description"] = description
    return data


def test_it_saves_a_codebook_edit_as_a_new_version_and_keeps_the_old_one(lead_client, project):
    data = codebook_post(
        "Classify sentiment, now with mixed.",
        [("positive", "liked"), ("negative", "disliked"), ("mixed", "both")],
    )

    response = lead_client.post(project_url("codebook_edit", project), data)

    assert response.status_code == 302
    v1, v2 = project.codebooks.order_by("version")
    assert (v1.version, v1.label_names) == (1, ["positive", "negative"])
    assert (v2.version, v2.label_names, v2.task_description) == (
        2,
        ["positive", "negative", "mixed"],
        "Classify sentiment, now with mixed.",
    )
    assert project.codebook == v2


def test_it_refuses_a_codebook_with_fewer_than_two_labels(lead_client, project):
    response = lead_client.post(
        project_url("codebook_edit", project), codebook_post("Task", [("only", "one")])
    )

    assert response.status_code == 200 and "at least two labels" in response.content.decode()
    assert project.codebooks.count() == 1


def test_it_renders_guidelines_markdown_without_running_scripts(lead_client, project, lead):
    data = codebook_post("Task", [("a", ""), ("b", "")])
    data["guidelines"] = "**bold** <script>alert('x')</script>"
    lead_client.post(project_url("codebook_edit", project), data)

    page = lead_client.get(project_url("codebook_detail", project)).content.decode()

    assert "<strong>bold</strong>" in page and "<script>alert" not in page


def test_it_adds_a_member_and_changes_their_role(lead_client, project, outsider):
    lead_client.post(project_url("members", project), {"username": outsider.username, "role": "annotator"})
    assert project.role_of(outsider) == Role.ANNOTATOR

    lead_client.post(project_url("members", project), {"username": outsider.username, "role": "lead"})
    assert project.role_of(outsider) == Role.LEAD


def test_it_refuses_to_add_an_unknown_user(lead_client, project):
    response = lead_client.post(project_url("members", project), {"username": "nobody", "role": "annotator"})
    assert "No active user is called" in response.content.decode()


def test_it_removes_a_member_but_keeps_the_last_lead(lead_client, project, lead, annotator):
    annotator_membership = Membership.objects.get(project=project, user=annotator)
    lead_membership = Membership.objects.get(project=project, user=lead)

    lead_client.post(reverse("member_remove", args=[project.id, annotator_membership.id]))
    lead_client.post(reverse("member_remove", args=[project.id, lead_membership.id]))

    assert list(project.memberships.values_list("user__username", flat=True)) == [lead.username]


def test_it_refuses_member_removal_by_annotators_and_outsiders(client, project, annotator, outsider, lead):
    lead_membership = Membership.objects.get(project=project, user=lead)
    url = reverse("member_remove", args=[project.id, lead_membership.id])
    for user, status in ((annotator, 403), (outsider, 404)):
        client.force_login(user)
        assert client.post(url).status_code == status
    assert Membership.objects.filter(pk=lead_membership.pk).exists()


def test_it_saves_project_settings(lead_client, project):
    lead_client.post(
        project_url("project_settings", project),
        {"name": "Film reviews 2", "description": "", "reservation_minutes": 10, "ask_quality_rating": "on"},
    )
    project.refresh_from_db()
    assert (project.name, project.reservation_minutes, project.ask_quality_rating, project.show_llm_suggestion) == (
        "Film reviews 2", 10, True, False,
    )  # fmt: skip


def test_it_searches_samples_and_answers_htmx_with_the_table_only(lead_client, project, samples):
    response = lead_client.get(project_url("sample_list", project), {"q": "superb"}, HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert "The acting was superb" in body and "Dull, predictable" not in body
    assert 'id="sample-table"' in body and "<html" not in body


def test_it_links_the_sample_list_to_import(lead_client, project):
    page = lead_client.get(project_url("sample_list", project)).content.decode()
    assert reverse("import_upload", args=[project.id]) in page


def test_it_warns_that_no_worker_is_running_only_when_none_has_a_fresh_heartbeat(lead_client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert "No worker is running" in lead_client.get(reverse("worker_status")).content.decode()

    WorkerHeartbeat.objects.create(hostname="w1@test", pid=1)

    assert "No worker is running" not in lead_client.get(reverse("worker_status")).content.decode()


def test_it_shows_a_queued_import_as_waiting_when_no_worker_is_alive(
    lead_client, project, lead, settings, tmp_path
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from synthstudio import services
    from synthstudio.importing import ColumnMapping

    settings.CELERY_TASK_ALWAYS_EAGER, settings.VAR_DIR = False, tmp_path
    job = services.import_create(
        project=project, user=lead, upload=SimpleUploadedFile("a.csv", b"text\nhi\n")
    )
    services.import_start(job=job, mapping=ColumnMapping(text_columns=["text"]))  # on_commit never fires here

    page = lead_client.get(reverse("import_progress", args=[project.id, job.id])).content.decode()

    assert "Queued" in page and "no worker is running" in page


def test_it_lets_users_change_their_password(client, db):
    user = make_user("pat")
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "correct-horse-battery",
            "new_password1": "a-much-longer-pass-1",
            "new_password2": "a-much-longer-pass-1",
        },
    )
    user.refresh_from_db()
    assert response.status_code == 302 and user.check_password("a-much-longer-pass-1")


def test_it_keeps_each_sample_hash_in_step_with_its_text(project):
    sample = Sample.objects.create(project=project, text="Once")
    first = sample.text_hash
    sample.text = "Twice"
    sample.save()
    assert first != sample.text_hash and len(sample.text_hash) == 64


def test_it_numbers_codebook_versions_per_project(project, lead):
    from synthstudio.services import codebook_create_version, project_create

    other = project_create(name="Other", user=lead)
    labels = [{"name": "a"}, {"name": "b"}]
    codebook_create_version(project=other, user=lead, task_description="t", guidelines="", labels=labels)
    second = codebook_create_version(
        project=project, user=lead, task_description="t2", guidelines="", labels=labels
    )

    assert second.version == 2 and other.codebook.version == 1
    assert Codebook.objects.get(project=project, version=1).label_names == ["positive", "negative"]
    assert [label.hotkey for label in second.labels.all()] == ["1", "2"]


def test_it_lets_staff_inspect_core_rows_in_the_admin(client, project, samples):
    staff = make_user("sam_staff", is_staff=True, is_superuser=True)
    client.force_login(staff)
    for model in ["project", "codebook", "sample", "importjob", "workerheartbeat"]:
        assert client.get(f"/admin/synthstudio/{model}/").status_code == 200
    assert client.get(f"/admin/synthstudio/project/{project.id}/change/").status_code == 200


def test_it_keeps_non_staff_out_of_the_admin(lead_client):
    assert lead_client.get("/admin/synthstudio/project/").status_code == 302


def test_the_sample_list_marks_labels_from_the_offline_labeller(lead_client, samples):
    from annotation.review.final_labels import final_label_refresh
    from synthstudio.models import LabelMethod, LLMAnnotation

    LLMAnnotation.objects.create(
        sample=samples[0],
        label="positive",
        distribution={"positive": 0.7, "negative": 0.3},
        confidence=0.7,
        method=LabelMethod.OFFLINE,
    )
    final_label_refresh(sample=samples[0])
    body = lead_client.get(reverse("sample_list", args=[samples[0].project_id])).content.decode()
    row = next(line for line in body.splitlines() if "A delight from start to finish." in line)
    assert 'class="badge offline">offline' in row
    other = next(line for line in body.splitlines() if "Two hours I will never get back." in line)
    assert "offline" not in other
