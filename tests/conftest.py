"""Shared fixtures: three fixed users (lead, annotator, outsider), a project with a codebook, and clients."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from synthstudio import celery_app
from synthstudio.models import Membership, Project, Role, Sample
from synthstudio.services import codebook_create_version

pytest_plugins = [
    "tests.browser",
    "tests.worker",
    "tests.openai_fixtures",
]  # browser_page/login_as/screenshot; celery_worker_process

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True, scope="session")
def _fast_and_eager(django_test_environment):
    """Eager Celery (tasks run in-process) and a fast password hasher; worker tests switch eager off.
    LLM calls may go to private addresses: the local OpenAI-compatible test server listens on 127.0.0.1
    (tests/generation/test_endpoint_security.py turns this off where it tests the refusal)."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.LLM_ALLOW_PRIVATE_HOSTS = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield


@pytest.fixture(autouse=True, scope="session")
def _sessions_cache_in_tmp(django_test_environment, tmp_path_factory):
    """Sessions of the test run in a folder of their own: the file-based session cache lists its whole folder
    on every save, and the shared var/cache/sessions grew by ~1,300 files per run of the access test, making
    every login slower run after run (126 of 146 s of that file went there)."""
    from django.conf import settings
    from django.test import override_settings

    sessions = settings.CACHES["sessions"]
    if sessions["BACKEND"] != "django.core.cache.backends.filebased.FileBasedCache":
        yield
        return
    folder = str(tmp_path_factory.mktemp("sessions"))
    with override_settings(CACHES={**settings.CACHES, "sessions": {**sessions, "LOCATION": folder}}):
        yield


@pytest.fixture(autouse=True)
def _fresh_process_cache():
    """Each test starts with an empty per-process cache: rolled-back tests reuse row ids, so a value cached under
    a project's id (gold rate, label aggregation, rounds waiting for answers) would leak into the next test."""
    from django.core.cache import caches

    caches["default"].clear()
    yield


def make_user(username: str, **extra):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


@pytest.fixture
def lead(db):
    return make_user("lena_lead")


@pytest.fixture
def annotator(db):
    return make_user("arno_annotator")


@pytest.fixture
def outsider(db):
    return make_user("olga_outsider")


LABELS = [
    {
        "name": "positive",
        "description": "The reviewer liked the film.",
        "examples": ["A delight from start to finish."],
    },
    {
        "name": "negative",
        "description": "The reviewer disliked the film.",
        "examples": ["Two hours I will never get back."],
    },
]


@pytest.fixture
def project(lead, annotator):
    project = Project.objects.create(name="Film reviews", created_by=lead)
    Membership.objects.create(project=project, user=lead, role=Role.LEAD)
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    codebook_create_version(
        project=project,
        user=lead,
        task_description="Classify the sentiment of a film review.",
        guidelines="Judge the **reviewer's** opinion, not the plot.",
        labels=LABELS,
    )
    return project


@pytest.fixture
def samples(project):
    texts = [
        "A delight from start to finish.",
        "Two hours I will never get back.",
        "The acting was superb and the score moving.",
        "Dull, predictable and far too long.",
    ]
    return [Sample.objects.create(project=project, text=text, is_seed=True) for text in texts]


def client_for(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def lead_client(client, lead):
    return client_for(client, lead)


@pytest.fixture
def annotator_client(client, annotator):
    return client_for(client, annotator)


@pytest.fixture
def outsider_client(client, outsider):
    return client_for(client, outsider)
