"""synthstudio.fastsql gives the same instances the ORM gives; the access check and sessions built on it behave."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.cached_db import SessionStore
from django.db import IntegrityError, transaction
from django.http import Http404
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from annotation import review_sql
from annotation.models import Assignment, ReviewTask, TaskKind
from synthstudio import fastsql
from synthstudio.access import project_for_user
from synthstudio.models import LLMAnnotation, Sample

from .conftest import PASSWORD


@pytest.fixture
def labelled(samples):
    sample = samples[0]
    sample.fields = {"title": "Évasion", "stars": 4}
    sample.provenance = {"conditions": {"tone": "dry"}, "offline": True}
    sample.save()
    return LLMAnnotation.objects.create(
        sample=sample, label="positive", distribution={"positive": 0.7, "negative": 0.3}, confidence=0.7,
        method="offline", valid=True,
    )


def test_a_row_read_with_plain_sql_equals_the_orm_instance_field_by_field(labelled):
    sample = labelled.sample
    row = fastsql.fetchone(
        f"SELECT {fastsql.columns(Sample, 's')}, {fastsql.columns(LLMAnnotation, 'l')} FROM synthstudio_sample s"
        " JOIN synthstudio_llmannotation l ON l.sample_id = s.id WHERE s.id = %s",
        [sample.pk],
    )
    fast_sample, fast_llm = fastsql.instances(row, Sample, LLMAnnotation)
    for fast, orm in ((fast_sample, Sample.objects.get(pk=sample.pk)), (fast_llm, LLMAnnotation.objects.get(pk=labelled.pk))):
        for field in type(orm)._meta.concrete_fields:
            assert getattr(fast, field.attname) == getattr(orm, field.attname), field.name
    assert fast_sample.fields == {"title": "Évasion", "stars": 4}  # JSON decoded
    assert fast_llm.valid is True and fast_llm.created_at.tzinfo is not None  # booleans and aware datetimes
    assert fast_sample._state.adding is False


def test_an_outer_join_that_found_nothing_gives_none(samples):
    row = fastsql.fetchone(
        f"SELECT {fastsql.columns(Sample, 's')}, {fastsql.columns(LLMAnnotation, 'l')} FROM synthstudio_sample s"
        " LEFT JOIN synthstudio_llmannotation l ON l.sample_id = s.id WHERE s.id = %s",
        [samples[1].pk],
    )
    sample, llm = fastsql.instances(row, Sample, LLMAnnotation)
    assert sample.pk == samples[1].pk and llm is None


def test_insert_applies_defaults_and_auto_now_like_save(project, samples, annotator):
    task = ReviewTask.objects.create(project=project, sample=samples[0], kind=TaskKind.ROUTED)
    before = timezone.now()
    assignment = fastsql.insert(
        Assignment(task=task, project=project, annotator=annotator, expires_at=before + timedelta(minutes=5))
    )
    stored = Assignment.objects.get(pk=assignment.pk)
    assert stored.status == "reserved" and stored.submission_id == ""
    assert stored.reserved_at >= before


def test_a_constraint_violation_raises_djangos_integrity_error(project, samples, annotator):
    task = ReviewTask.objects.create(project=project, sample=samples[0], kind=TaskKind.ROUTED)
    expires = timezone.now() + timedelta(minutes=5)
    fastsql.insert(Assignment(task=task, project=project, annotator=annotator, expires_at=expires))
    with pytest.raises(IntegrityError), transaction.atomic():
        fastsql.insert(Assignment(task=task, project=project, annotator=annotator, expires_at=expires))


def test_the_item_query_loads_the_current_llm_label_and_the_newest_codebook(project, labelled, annotator):
    task = ReviewTask.objects.create(project=project, sample=labelled.sample, kind=TaskKind.ROUTED)
    assignment = fastsql.insert(
        Assignment(task=task, project=project, annotator=annotator, expires_at=timezone.now() + timedelta(minutes=5))
    )
    loaded = review_sql.item(assignment_id=assignment.pk, annotator_id=annotator.pk, project_id=project.pk)
    assert loaded.task.sample.text == labelled.sample.text
    assert loaded.llm_suggestion.pk == labelled.pk
    assert loaded.current_codebook.pk == project.codebook.pk
    assert review_sql.item(assignment_id=assignment.pk, annotator_id=annotator.pk + 1000, project_id=project.pk) is None


def test_a_project_id_that_is_not_a_number_is_a_404(project, annotator):
    request = RequestFactory().get("/")
    request.user = annotator
    with pytest.raises(Http404):
        project_for_user(request, "1 OR 1=1")


def test_after_logout_the_old_session_cookie_no_longer_opens_a_project(project, annotator):
    browser = Client()
    assert browser.login(username=annotator.username, password=PASSWORD)
    cookie = browser.cookies["sessionid"].value
    queue = reverse("annotation:review_queue", args=[project.id])
    assert browser.get(queue).status_code == 200
    assert SessionStore(session_key=cookie).load()  # cached in the shared session cache
    browser.post(reverse("logout"))
    replay = Client()
    replay.cookies["sessionid"] = cookie
    response = replay.get(queue)
    assert response.status_code in (302, 404)
    assert not SessionStore(session_key=cookie).exists(cookie)


def test_the_request_user_is_loaded_and_an_inactive_or_unknown_user_is_anonymous(annotator):
    from synthstudio.auth import ModelBackend

    backend = ModelBackend()
    loaded = backend.get_user(str(annotator.pk))
    assert (loaded.pk, loaded.username, loaded.password) == (annotator.pk, annotator.username, annotator.password)
    assert backend.get_user("not-a-number") is None and backend.get_user(annotator.pk + 999) is None
    annotator.is_active = False
    annotator.save()
    assert backend.get_user(annotator.pk) is None
