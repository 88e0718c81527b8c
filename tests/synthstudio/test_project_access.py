"""The access helper every project page starts from (synthstudio.access) and the session it relies on."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.cached_db import SessionStore
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import Client, RequestFactory
from django.urls import reverse

from synthstudio.access import lead_project, project_for_user
from synthstudio.models import Role
from tests.conftest import PASSWORD


def request_of(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def test_it_reads_the_membership_and_its_project_in_one_query(project, annotator, django_assert_num_queries):
    with django_assert_num_queries(1):
        found, role = project_for_user(request_of(annotator), project.pk)
        assert (found.pk, found.name, role) == (project.pk, project.name, Role.ANNOTATOR)


def test_it_answers_404_to_outsiders_and_403_to_members_who_are_not_leads(project, annotator, outsider):
    with pytest.raises(Http404):
        project_for_user(request_of(outsider), project.pk)
    with pytest.raises(PermissionDenied):
        lead_project(request_of(annotator), project.pk)


def test_a_project_id_that_is_not_a_number_is_a_404(project, annotator):
    with pytest.raises(Http404):
        project_for_user(request_of(annotator), "1 OR 1=1")


def test_after_logout_the_old_session_cookie_no_longer_opens_a_project(project, annotator):
    browser = Client()
    logged_in = browser.post(reverse("login"), {"username": annotator.username, "password": PASSWORD})
    assert logged_in.status_code == 302
    cookie = browser.cookies["sessionid"].value
    queue = reverse("annotation:review_queue", args=[project.id])
    assert browser.get(queue).status_code == 200
    assert SessionStore(session_key=cookie).load()  # cached in the shared session cache
    browser.post(reverse("logout"))
    replay = Client()
    replay.cookies["sessionid"] = cookie
    response = replay.get(queue)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not SessionStore(session_key=cookie).exists(cookie)
