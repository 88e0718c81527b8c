"""Password and API-token guessing is throttled (django-axes, synthstudio.throttling).

After AXES_FAILURE_LIMIT (10) failures a username+IP pair is refused with 429 until the cool-off (15 minutes
after the latest try) has passed, even with the right password; bad bearer tokens count per IP address.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from evaluation.curation.services import api_token_create
from tests.conftest import PASSWORD

WRONG = "not-the-password"


def log_in(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def api_get(client, token: str, ip: str = "10.0.0.1"):
    return client.get(reverse("api:projects"), HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=ip)


def test_the_limit_and_cool_off_are_the_documented_defaults():
    assert settings.AXES_FAILURE_LIMIT == 10 and settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_it_refuses_the_right_password_after_fifty_wrong_ones(client, lead):
    statuses = [log_in(client, lead.username, WRONG).status_code for _ in range(50)]
    response = log_in(client, lead.username, PASSWORD)

    assert statuses[:9] == [200] * 9 and set(statuses[9:]) == {429}
    assert response.status_code == 429 and not logged_in(client)
    page = response.content.decode()
    assert "Too many failed logins" in page and "Try again after" in page
    assert 14 * 60 <= int(response["Retry-After"]) <= 15 * 60


def test_a_good_login_still_works_under_the_limit_and_starts_the_count_again(client, lead):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, lead.username, WRONG).status_code == 200

    assert log_in(client, lead.username, PASSWORD).status_code == 302 and logged_in(client)
    assert not AccessAttempt.objects.filter(username=lead.username).exists()


def test_a_lockout_holds_one_username_at_one_address_only(client, lead, annotator):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, lead.username, WRONG, ip="10.0.0.1")

    assert log_in(client, lead.username, PASSWORD, ip="10.0.0.1").status_code == 429
    assert log_in(client, annotator.username, PASSWORD, ip="10.0.0.1").status_code == 302  # same office
    client.logout()
    assert log_in(client, lead.username, PASSWORD, ip="10.0.0.2").status_code == 302  # the user elsewhere


def test_the_right_password_works_again_once_the_cool_off_has_passed(client, lead):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, lead.username, WRONG)
    assert log_in(client, lead.username, PASSWORD).status_code == 429

    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert log_in(client, lead.username, PASSWORD).status_code == 302 and logged_in(client)


def test_bad_bearer_tokens_from_one_address_are_refused_with_429_after_the_limit(client, lead):
    _, good = api_token_create(user=lead, name="ci")
    statuses = [api_get(client, f"ssk_guess-{attempt}").status_code for attempt in range(12)]

    assert statuses[:9] == [401] * 9 and set(statuses[9:]) == {429}
    refused = api_get(client, good)
    assert refused.status_code == 429 and "try again in" in refused.json()["error"]
    assert int(refused["Retry-After"]) > 0
    assert api_get(client, good, ip="10.0.0.2").status_code == 200  # another address is not held back


def test_a_good_token_still_works_under_the_limit(client, lead):
    _, good = api_token_create(user=lead, name="ci")
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert api_get(client, f"ssk_guess-{attempt}").status_code == 401

    response = api_get(client, good)

    assert response.status_code == 200 and response.json() == {"projects": []}


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer"])
def test_malformed_authorization_headers_count_as_bad_tokens(client, db, header):
    statuses = [
        client.get(reverse("api:projects"), HTTP_AUTHORIZATION=header, REMOTE_ADDR="10.0.0.3").status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]

    assert statuses[-1] == 429 and statuses[0] == 401
