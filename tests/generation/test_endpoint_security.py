"""No secret leaves the server through LLM endpoints.

A real HTTP listener on 127.0.0.1 records the Authorization header of every request it receives; the lead
drives the real pages (endpoint form, "Test connection") and the real client path (generation.llm). Covered:
who may create projects (and so become a lead), which environment variables may hold a key, a stored key not
following a changed base URL or model, keys encrypted at rest, refused private addresses (also behind a
redirect and behind DNS), and a connection test that never reports the remote status.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import httpx2
import pytest
from django.db import connection
from django.urls import reverse

from generation.endpoint_keys import UNREADABLE_MESSAGE, key_variable_problem
from generation.llm.client import (
    CONNECTION_INCOMPATIBLE,
    EndpointSettings,
    LLMRequest,
    check_connection,
    complete,
    complete_many_sync,
)
from generation.llm.outbound import OutboundGuard, OutboundPolicy, RefusedDestination, address_kind
from generation.models import LLMEndpoint
from generation.services.endpoints import endpoint_sync_from_environment
from synthstudio.models import Project, Role
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

APP_SECRET = "do-not-send-me-0f3c9a"
STORED_KEY = "sk-stored-7d1e42"
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "test-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


class Listener:
    """A tiny HTTP server in a thread that records (path, Authorization) of every request and answers an
    OpenAI-style completion, or `status` with `body`, or a redirect to `location`."""

    def __init__(
        self, host: str = "127.0.0.1", *, status: int = 200, body: bytes | None = None, location: str = ""
    ) -> None:
        self.status, self.body, self.location = status, body, location
        self.requests: list[tuple[str, str]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.requests.append((self.path, self.headers.get("Authorization", "")))
                if listener.location:
                    self.send_response(307)
                    self.send_header("Location", listener.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = listener.body if listener.body is not None else json.dumps(COMPLETION).encode()
                self.send_response(listener.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def authorizations(self) -> list[str]:
        return [authorization for _, authorization in self.requests]

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as running:
        yield running


def endpoint_form(base_url: str, **changes: str) -> dict[str, str]:
    return {
        "name": "local",
        "base_url": base_url,
        "model": "test-model",
        "api_key_env": "",
        "api_key": "",
        "max_concurrency": "2",
        "rpm": "0",
        "tpm": "0",
        "price_input_per_1k": "0",
        "price_output_per_1k": "0",
        "timeout_seconds": "5",
        "max_retries": "0",
        **changes,
    }


def press_test_connection(client, project, endpoint) -> str:
    response = client.post(
        reverse("generation:endpoint_test", args=[project.id, endpoint.id]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    return response.content.decode()


# -- who may create projects -------------------------------------------------------------------------------


def test_only_staff_create_projects_unless_the_operator_opens_it_to_everyone(client, outsider, settings):
    client.force_login(outsider)
    assert client.get(reverse("project_new")).status_code == 403
    assert client.post(reverse("project_new"), {"name": "Exfiltration", "description": ""}).status_code == 403
    assert not Project.objects.filter(name="Exfiltration").exists()
    assert "New project" not in client.get(reverse("home")).content.decode()

    client.force_login(make_user("stella_staff", is_staff=True))
    assert "New project" in client.get(reverse("home")).content.decode()
    assert client.post(reverse("project_new"), {"name": "By staff", "description": ""}).status_code == 302

    settings.PROJECT_CREATORS = "everyone"
    client.force_login(outsider)
    assert "New project" in client.get(reverse("home")).content.decode()
    assert client.post(reverse("project_new"), {"name": "By anyone", "description": ""}).status_code == 302
    assert Project.objects.get(name="By anyone").role_of(outsider) == Role.LEAD


# -- key variables ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["SECRET_KEY", "LLM_API_KEY", "DATABASE_URL"])
def test_the_app_secrets_never_reach_an_endpoint_as_its_key(
    lead_client, project, listener, monkeypatch, settings, variable
):
    monkeypatch.setenv(variable, APP_SECRET)
    settings.LLM_KEY_ENV_ALLOWED = [variable]  # even listed by the operator: never
    url = reverse("generation:endpoint_list", args=[project.id])

    response = lead_client.post(url, endpoint_form(listener.base_url, api_key_env=variable))

    assert response.status_code == 200 and not LLMEndpoint.objects.filter(project=project).exists()
    assert (
        "may not hold an endpoint key" in response.content.decode()
        and "SYNTHSTUDIO_KEY_" in response.content.decode()
    )
    # a row saved before the rule (or by other means) is refused at use, by the test button and by runs
    legacy = LLMEndpoint.objects.create(
        project=project,
        name="legacy",
        base_url=listener.base_url,
        model="m",
        api_key_env=variable,
        max_retries=0,
    )
    body = press_test_connection(lead_client, project, legacy)
    result = complete(legacy, [{"role": "user", "content": "hi"}], use_cache=False)
    assert "may not hold an endpoint key" in body and not result.ok
    assert listener.requests == []
    # the listener does see keys: an allowed variable arrives
    monkeypatch.setenv("SYNTHSTUDIO_KEY_LOCAL", "sk-allowed-1")
    lead_client.post(
        url, endpoint_form(listener.base_url, name="allowed", api_key_env="SYNTHSTUDIO_KEY_LOCAL")
    )
    assert "OK" in press_test_connection(lead_client, project, LLMEndpoint.objects.get(name="allowed"))
    assert listener.authorizations == ["Bearer sk-allowed-1"]


def test_the_operator_chooses_the_key_variables(settings):
    assert key_variable_problem("SYNTHSTUDIO_KEY_OPENAI") == ""
    assert key_variable_problem("SYNTHSTUDIO_KEY_") != ""  # the bare prefix names nothing
    assert key_variable_problem("OPENAI_API_KEY") != ""
    settings.LLM_KEY_ENV_PREFIX, settings.LLM_KEY_ENV_ALLOWED = "", ["OPENAI_API_KEY"]
    assert (
        key_variable_problem("OPENAI_API_KEY") == "" and key_variable_problem("SYNTHSTUDIO_KEY_OPENAI") != ""
    )
    settings.LLM_KEY_ENV_PREFIX = "LLM_"
    assert key_variable_problem("LLM_API_KEY") != "" and key_variable_problem("LLM_OTHER") == ""


def test_the_operators_environment_endpoint_keeps_its_key_and_host(lead_client, project, listener, settings):
    settings.LLM_ALLOW_PRIVATE_HOSTS = False
    settings.LLM_BASE_URL, settings.LLM_MODEL, settings.LLM_API_KEY = (
        listener.base_url,
        "test-model",
        "sk-operator-9",
    )
    environment = endpoint_sync_from_environment()

    assert "OK" in press_test_connection(lead_client, project, environment)
    assert listener.authorizations == ["Bearer sk-operator-9"]
    # the operator's origin is trusted, not the whole host: a lead's endpoint on another port is refused
    with Listener() as other:
        lead_made = LLMEndpoint.objects.create(
            project=project, name="other", base_url=other.base_url, model="m"
        )
        assert "Refused: private address" in press_test_connection(lead_client, project, lead_made)
        assert other.requests == []


# -- a changed base URL or model drops the stored key ----------------------------------------------------


@pytest.mark.parametrize("change", ["base_url", "model"])
def test_a_stored_key_does_not_follow_a_changed_base_url_or_model(lead_client, project, listener, change):
    endpoint = LLMEndpoint.objects.create(
        project=project,
        name="local",
        base_url=listener.base_url,
        model="test-model",
        stored_api_key=STORED_KEY,
        max_retries=0,
    )
    with Listener() as elsewhere:
        base_url = elsewhere.base_url if change == "base_url" else listener.base_url
        model = "another-model" if change == "model" else "test-model"
        edit = reverse("generation:endpoint_edit", args=[project.id, endpoint.id])

        response = lead_client.post(edit, endpoint_form(base_url, model=model), follow=True)

        assert "The stored key was removed" in response.content.decode()
        endpoint.refresh_from_db()
        assert endpoint.stored_api_key == ""
        press_test_connection(lead_client, project, endpoint)
        assert STORED_KEY not in " ".join(listener.authorizations + elsewhere.authorizations)
        assert (elsewhere if change == "base_url" else listener).authorizations == ["Bearer no-key"]

    # a key typed together with the change is the new server's key: kept, nothing said about removing
    response = lead_client.post(
        edit, endpoint_form(listener.base_url, model="third-model", api_key="sk-new-9"), follow=True
    )
    assert "The stored key was removed" not in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.stored_api_key == "sk-new-9"


# -- keys encrypted at rest -------------------------------------------------------------------------------


def stored_column(endpoint: LLMEndpoint) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT stored_api_key FROM generation_llmendpoint WHERE id = %s", [endpoint.pk])
        return cursor.fetchone()[0]


def test_stored_keys_are_encrypted_and_a_changed_secret_key_says_re_enter_it(
    lead_client, lead, project, listener, settings
):
    endpoint = LLMEndpoint.objects.create(
        project=project,
        name="local",
        base_url=listener.base_url,
        model="test-model",
        stored_api_key=STORED_KEY,
        max_retries=0,
    )
    token = stored_column(endpoint)
    assert STORED_KEY not in token and token.startswith("gAAAAA")
    assert LLMEndpoint.objects.get(pk=endpoint.pk).stored_api_key == STORED_KEY

    old_secret = settings.SECRET_KEY
    settings.SECRET_KEY = "a-different-secret-key-for-this-test-0123456789"
    lead_client.force_login(lead)  # the session's auth hash depends on SECRET_KEY too
    unreadable = LLMEndpoint.objects.get(pk=endpoint.pk)
    body = press_test_connection(lead_client, project, unreadable)
    page = lead_client.get(reverse("generation:endpoint_list", args=[project.id]))

    assert UNREADABLE_MESSAGE in body and listener.requests == []
    assert page.status_code == 200 and UNREADABLE_MESSAGE in page.content.decode()
    unreadable.name = "renamed"
    unreadable.save()  # saving other fields keeps the token as it was
    assert stored_column(endpoint) == token
    settings.SECRET_KEY_FALLBACKS = [old_secret]  # Django's key rotation: the old key still decrypts
    assert LLMEndpoint.objects.get(pk=endpoint.pk).stored_api_key == STORED_KEY


def test_the_migration_encrypts_plaintext_keys(project):
    migration = importlib.import_module("generation.migrations.0003_endpoint_keys_encrypted")
    endpoint = LLMEndpoint.objects.create(
        project=project, name="old", base_url="http://127.0.0.1:9/v1", model="m"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE generation_llmendpoint SET stored_api_key = %s WHERE id = %s",
            ["sk-legacy-plain", endpoint.pk],
        )
    from django.apps import apps

    migration.encrypt_plaintext_keys(apps, SimpleNamespace(connection=connection))
    migration.encrypt_plaintext_keys(
        apps, SimpleNamespace(connection=connection)
    )  # a second run changes nothing

    assert stored_column(endpoint).startswith("gAAAAA")
    assert LLMEndpoint.objects.get(pk=endpoint.pk).stored_api_key == "sk-legacy-plain"


# -- outbound addresses -----------------------------------------------------------------------------------


def test_a_private_base_url_is_refused_when_private_hosts_are_not_allowed(
    lead_client, project, listener, settings
):
    settings.LLM_ALLOW_PRIVATE_HOSTS = False

    response = lead_client.post(
        reverse("generation:endpoint_list", args=[project.id]),
        endpoint_form(listener.base_url, api_key="sk-typed"),
    )
    assert "Refused: private address" in response.content.decode()
    assert not LLMEndpoint.objects.filter(project=project).exists()
    saved_earlier = LLMEndpoint.objects.create(
        project=project,
        name="earlier",
        base_url=listener.base_url,
        model="m",
        stored_api_key=STORED_KEY,
        max_retries=0,
    )
    body = press_test_connection(lead_client, project, saved_earlier)
    result = complete(saved_earlier, [{"role": "user", "content": "hi"}], use_cache=False)

    assert "Refused: private address" in body and "Refused: private address" in result.error
    assert listener.requests == []


def test_a_redirect_to_a_refused_address_is_not_followed(lead_client, project, settings):
    settings.LLM_ALLOW_PRIVATE_HOSTS, settings.LLM_ALLOWED_HOSTS = False, ["127.0.0.1"]
    with Listener("127.0.0.2") as inside, Listener(location="") as allowed:
        allowed.location = inside.base_url + "/chat/completions"
        endpoint = LLMEndpoint.objects.create(
            project=project,
            name="redirects",
            base_url=allowed.base_url,
            model="m",
            stored_api_key=STORED_KEY,
            max_retries=0,
        )
        body = press_test_connection(lead_client, project, endpoint)

        assert len(allowed.requests) == 1 and inside.requests == []
        assert CONNECTION_INCOMPATIBLE.split(" (")[0] in body and "307" not in body


@pytest.mark.parametrize(
    ("status", "body"), [(418, b'{"error": "teapot-body-secret"}'), (503, b"upstream 503"), (200, b"<html>")]
)
def test_the_connection_test_never_reports_the_remote_status_or_body(
    lead_client, project, settings, status, body
):
    with Listener(status=status, body=body) as remote:
        endpoint = LLMEndpoint.objects.create(
            project=project, name="remote", base_url=remote.base_url, model="m", max_retries=0
        )
        ok, message = check_connection(endpoint)

    assert not ok and message == CONNECTION_INCOMPATIBLE
    assert str(status) not in message and "teapot" not in message and "upstream" not in message


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "private"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("::1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "special"),
        ("fe80::1", "special"),
        ("224.0.0.1", "special"),
        ("0.0.0.0", "special"),
        ("240.0.0.1", "special"),
        ("100.64.0.1", "special"),
        ("8.8.8.8", ""),
        ("2606:4700:4700::1111", ""),
    ],
)
def test_addresses_are_classified(address, kind):
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_the_policy_checks_every_resolved_address_and_the_operators_exceptions():
    public, private = (
        (lambda host, port: ["93.184.216.34"]),
        (lambda host, port: ["93.184.216.34", "10.0.0.5"]),
    )
    strict = OutboundPolicy()
    assert strict.check("https://llm.example/v1", resolver=public) == ("", "93.184.216.34")
    assert strict.check("https://llm.example/v1", resolver=private)[0].startswith("Refused")
    assert strict.check("http://[::ffff:127.0.0.1]:8000/v1")[0].startswith("Refused")
    assert strict.check("ftp://llm.example/v1")[0].startswith("Refused")
    relaxed = OutboundPolicy(allow_private=True)
    assert relaxed.check("http://127.0.0.1:8000/v1")[0] == ""
    assert relaxed.check("http://169.254.169.254/latest")[0].startswith(
        "Refused"
    )  # metadata: never by the flag
    listed = OutboundPolicy(
        allowed_networks=(ipaddress.ip_network("169.254.0.0/16"),), allowed_names=frozenset({"gpu-box"})
    )
    assert listed.check("http://169.254.169.254/latest")[0] == ""
    assert listed.check("http://GPU-box:8000/v1", resolver=private) == ("", None)


def test_the_request_hook_pins_the_checked_address_against_dns_rebinding():
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    guard = OutboundGuard(OutboundPolicy(), resolver=lambda host, port: next(answers))
    first = httpx2.Request("POST", "https://llm.example/v1/chat/completions")
    second = httpx2.Request("POST", "https://llm.example/v1/chat/completions")

    asyncio.run(guard(first))
    asyncio.run(guard(second))  # the second DNS answer (loopback) is never used

    assert [str(r.url.host) for r in (first, second)] == ["93.184.216.34", "93.184.216.34"]
    assert first.headers["host"] == "llm.example" and first.extensions["sni_hostname"] == "llm.example"
    refusing = OutboundGuard(OutboundPolicy(), resolver=lambda host, port: ["127.0.0.1"])
    with pytest.raises(RefusedDestination):
        asyncio.run(refusing(httpx2.Request("POST", "http://rebound.example/v1/chat/completions")))


def test_the_real_client_connects_to_the_pinned_address_not_to_a_later_dns_answer(monkeypatch, settings):
    """Through the real transport (aiohttp): the host is resolved by the policy check and the request hook,
    and the connection goes to that address even though the name resolves elsewhere afterwards."""
    settings.LLM_ALLOW_PRIVATE_HOSTS = True
    real_getaddrinfo = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host, port, *args, **kwargs):
        if host != "llm.rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = "127.0.0.1" if len(answers) < 2 else "127.0.0.2"  # the preflight and the hook, then moved
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with Listener() as pinned:
        port = pinned.server.server_address[1]
        endpoint = EndpointSettings(
            base_url=f"http://llm.rebind.test:{port}/v1", model="m", max_retries=0, max_concurrency=2
        )
        results = []
        complete_many_sync(
            endpoint,
            [LLMRequest(key=i, messages=[{"role": "user", "content": f"hi {i}"}]) for i in range(3)],
            lambda request, result: results.append(result),
            use_cache=False,
        )

    # a connection made from a later DNS answer would have gone to 127.0.0.2, where nothing listens
    assert [result.content for result in results] == ["OK"] * 3 and len(pinned.requests) == 3


def test_settings_the_code_would_ignore_are_reported_by_the_system_checks(settings):
    from generation.checks import endpoint_security_settings

    settings.LLM_KEY_ENV_ALLOWED, settings.LLM_ALLOWED_HOSTS = (
        ["SECRET_KEY", "OPENAI_API_KEY"],
        ["10.0.0.0/33", "gpu-box"],
    )

    assert sorted(message.id for message in endpoint_security_settings(None)) == [
        "generation.E001",
        "generation.W001",
    ]
