"""Throttling of password and API-token guessing, on top of django-axes.

The login form is throttled by axes itself (AxesStandaloneBackend refuses a locked-out username+IP before the
password is checked; AxesMiddleware turns the lockout into the page rendered here). Bearer tokens of the HTTP
API never pass through `django.contrib.auth.authenticate`, so the API reports a bad token to axes as a failed
login of API_TOKEN_USERNAME, a name no account can have (Django usernames hold no spaces or angle brackets).
Axes then counts bad tokens per IP address with the same limit and cool-off as passwords, shows them in its
admin pages and clears them with `manage.py axes_reset`: one mechanism, not a second counter in the cache.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

API_TOKEN_USERNAME = "<api token>"


def api_token_credentials() -> dict[str, str]:
    return {settings.AXES_USERNAME_FORM_FIELD: API_TOKEN_USERNAME}


def api_token_locked(request: HttpRequest) -> bool:
    """True while this client's IP address is cooling off after too many bad API tokens."""
    return AxesProxyHandler.is_locked(request, api_token_credentials())


def api_token_failed(request: HttpRequest) -> None:
    """Count a bad API token against the client's IP address. On the failure that reaches the limit axes flags
    the request (request.axes_locked_out) and AxesMiddleware replaces the response with lockout_response."""
    user_login_failed.send(sender=__name__, credentials=api_token_credentials(), request=request)


def retry_at(request: HttpRequest, credentials: dict | None) -> datetime:
    """When the lockout of this username+IP ends: the cool-off counts from the latest failure (axes records
    a failure made during the lockout too, so trying again pushes the end back)."""
    cool_off = get_cool_off(request) or timedelta(0)
    latest = AccessAttempt.objects.filter(
        username=get_client_username(request, credentials),
        ip_address=getattr(request, "axes_ip_address", None),
    ).aggregate(latest=Max("attempt_time"))["latest"]
    return (latest or timezone.now()) + cool_off


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with a Retry-After header; JSON for the token API, else a page saying when
    to try again (axes' own response would be a template without that time, or JSON only for XHR)."""
    until = retry_at(request, credentials)
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    minutes = math.ceil(seconds / 60)
    username = get_client_username(request, credentials) or ""
    if username == API_TOKEN_USERNAME:
        response: HttpResponse = JsonResponse(
            {
                "error": f"Too many invalid API tokens from this address: try again in {minutes} minute(s).",
                "retry_after_seconds": seconds,
            },
            status=429,
        )
    else:
        context = {"username": username, "retry_at": until, "minutes": minutes}
        response = render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=429)
    response["Retry-After"] = str(seconds)
    return response
