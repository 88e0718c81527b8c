"""The shared LLM client against the local test server: retries, faults, limits, cache, cost."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import socket
import time

import pytest

from generation.llm import client as client_module
from generation.llm.client import (
    EndpointSettings,
    ErrorKind,
    LLMRequest,
    RateLimiter,
    check_connection,
    complete,
    complete_many_sync,
    retry_delay,
)
from generation.models import LLMCall, LLMEndpoint
from generation.testing.openai_server import Reply

SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "label": {"type": "string", "enum": ["negative", "positive"]}},
    "required": ["text", "label"],
}
PROMPT = [{"role": "user", "content": "Write a review.\n- topic: cats\n- label: positive"}]


def settings_for(server, **changes) -> EndpointSettings:
    values = dict(
        base_url=server.base_url,
        model="test-model",
        api_key="k",
        backoff_base=0.01,
        timeout=2.0,
        price_input_per_1k=1.0,
        price_output_per_1k=2.0,
    )
    values.update(changes)
    return EndpointSettings(**values)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_it_parses_and_validates_structured_output_and_prices_it(openai_server):
    result = complete(settings_for(openai_server), PROMPT, json_schema=SCHEMA, temperature=0.7)
    assert result.ok and result.parsed[0]["label"] == "positive"
    assert openai_server.requests[0]["response_format"]["json_schema"]["schema"] == SCHEMA
    assert result.cost == pytest.approx(result.prompt_tokens / 1000 + 2 * result.completion_tokens / 1000)


@pytest.mark.django_db
def test_it_serves_a_second_identical_call_from_the_cache_without_http(openai_server):
    settings = settings_for(openai_server)
    first = complete(settings, PROMPT, json_schema=SCHEMA, seed=3)
    second = complete(settings, PROMPT, json_schema=SCHEMA, seed=3)
    assert openai_server.request_count == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.content == first.content and second.cost == 0.0
    assert LLMCall.objects.count() == 1


@pytest.mark.django_db
def test_it_sends_a_call_with_different_params_again(openai_server):
    settings = settings_for(openai_server)
    complete(settings, PROMPT, seed=1)
    complete(settings, PROMPT, seed=2)
    assert openai_server.request_count == 2


@pytest.mark.django_db
def test_it_retries_429_honouring_retry_after(openai_server):
    openai_server.fail_next(2, "429", retry_after=0.02)
    result = complete(settings_for(openai_server), PROMPT, json_schema=SCHEMA)
    assert result.ok and result.attempts == 3
    assert openai_server.request_count == 3


@pytest.mark.parametrize("fault", ["500", "reset", "malformed"])
@pytest.mark.django_db
def test_it_retries_transient_faults_then_succeeds(openai_server, fault):
    openai_server.fail_next(2, fault)
    result = complete(settings_for(openai_server), PROMPT, json_schema=SCHEMA)
    assert result.ok and result.attempts == 3


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("500", ErrorKind.HTTP_ERROR), ("reset", ErrorKind.CONNECTION), ("malformed", ErrorKind.INVALID_JSON)],
)
@pytest.mark.django_db
def test_it_gives_up_after_max_retries_with_the_error_kind(openai_server, fault, kind):
    openai_server.fail_next(10, fault)
    result = complete(settings_for(openai_server, max_retries=2), PROMPT, json_schema=SCHEMA)
    assert result.error_kind == kind and "after 3 attempts" in result.error
    assert openai_server.request_count == 3
    assert not LLMCall.objects.exists()


@pytest.mark.django_db
def test_it_times_out_slow_answers(openai_server):
    openai_server.fail_next(5, "slow", delay=1.0)
    result = complete(settings_for(openai_server, timeout=0.2, max_retries=1), PROMPT)
    assert result.error_kind == ErrorKind.TIMEOUT


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("refusal", ErrorKind.REFUSAL), ("empty", ErrorKind.EMPTY_OUTPUT), ("garbage", ErrorKind.INVALID_JSON)],
)
@pytest.mark.django_db
def test_it_classifies_unusable_content_without_retrying(openai_server, fault, kind):
    openai_server.fail_next(1, fault)
    result = complete(settings_for(openai_server), PROMPT, json_schema=SCHEMA)
    assert result.error_kind == kind
    assert openai_server.request_count == 1


@pytest.mark.django_db
def test_it_reports_a_schema_mismatch_naming_the_problem(openai_server):
    openai_server.responder = lambda body, index: json.dumps({"text": "hi", "label": "maybe"})
    result = complete(settings_for(openai_server), PROMPT, json_schema=SCHEMA)
    assert result.error_kind == ErrorKind.SCHEMA_MISMATCH and "'maybe'" in result.error


@pytest.mark.django_db
def test_it_fails_clearly_when_nothing_listens(db):
    settings = EndpointSettings(
        base_url=f"http://127.0.0.1:{unused_port()}/v1", model="m", backoff_base=0.01, max_retries=1
    )
    result = complete(settings, PROMPT)
    assert result.error_kind == ErrorKind.CONNECTION and "Could not connect" in result.error


@pytest.mark.django_db
def test_it_returns_logprobs_and_drops_them_where_unsupported(openai_server):
    openai_server.responder = lambda body, index: Reply(
        "A", token_logprobs=[{"A": math.log(0.8), "B": math.log(0.2)}]
    )
    result = complete(settings_for(openai_server), PROMPT, logprobs=True, top_logprobs=2, max_tokens=1)
    assert [alt["token"] for alt in result.logprobs[0][0]["top_logprobs"]] == ["A", "B"]
    complete(
        settings_for(openai_server, supports_logprobs=False),
        PROMPT,
        logprobs=True,
        top_logprobs=2,
        max_tokens=1,
    )
    assert "logprobs" not in openai_server.requests[-1]


@pytest.mark.django_db
def test_it_validates_json_even_where_response_format_is_unsupported(openai_server):
    result = complete(settings_for(openai_server, supports_response_format=False), PROMPT, json_schema=SCHEMA)
    assert "response_format" not in openai_server.requests[0]
    assert result.ok and result.parsed[0]["text"]


@pytest.mark.django_db
def test_it_returns_all_n_choices(openai_server):
    result = complete(settings_for(openai_server), PROMPT, json_schema=SCHEMA, n=3)
    assert len(result.parsed) == 3 and all(result.parsed)


@pytest.mark.django_db
def test_a_batch_delivers_every_result_once_and_stops_when_asked(openai_server):
    settings = settings_for(openai_server, max_concurrency=4)
    requests = [LLMRequest(key=i, messages=PROMPT, params={"seed": i}) for i in range(12)]
    seen: list = []
    summary = complete_many_sync(settings, requests, lambda req, res: seen.append(res.key))
    assert sorted(seen) == list(range(12)) and summary.sent == 12
    again: list = []
    summary = complete_many_sync(settings, requests, lambda req, res: again.append(res.cached))
    assert again == [True] * 12 and summary.cached == 12 and openai_server.request_count == 12
    fresh = [LLMRequest(key=i, messages=PROMPT, params={"seed": 100 + i}) for i in range(12)]
    stopped: list = []
    summary = complete_many_sync(
        settings, fresh, lambda req, res: stopped.append(res.key) or len(stopped) < 2
    )
    assert summary.stopped and len(stopped) == 2


def test_the_rate_limiter_waits_for_the_window_when_rpm_is_used_up():
    now = [0.0]
    limiter = RateLimiter(rpm=2, clock=lambda: now[0])
    assert limiter.delay_needed(10) == 0 and limiter.delay_needed(10) == 0
    assert limiter.delay_needed(10) == pytest.approx(60)
    now[0] = 61
    assert limiter.delay_needed(10) == 0


def test_the_rate_limiter_counts_tokens_per_minute():
    limiter = RateLimiter(tpm=100, clock=lambda: 5.0)
    assert limiter.delay_needed(80) == 0
    assert limiter.delay_needed(30) == pytest.approx(60)


def test_retry_delay_prefers_the_servers_retry_after():
    settings = EndpointSettings(base_url="http://x/v1", model="m", backoff_base=1.0)
    assert retry_delay(settings, 1, {"retry-after": "3"}) == 3.0
    assert retry_delay(settings, 1, {"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert 2.0 <= retry_delay(settings, 3, {}) <= 4.0


@pytest.mark.django_db
def test_check_connection_reports_success_and_failure(openai_server, project):
    endpoint = LLMEndpoint.objects.create(
        project=project, name="local", base_url=openai_server.base_url, model="test-model"
    )
    ok, message = check_connection(endpoint)
    assert ok and "test-model" in message
    endpoint.base_url = f"http://127.0.0.1:{unused_port()}/v1"
    ok, message = check_connection(endpoint)
    assert not ok and "Could not connect" in message


def test_the_endpoint_repr_never_shows_the_key():
    endpoint = LLMEndpoint(name="x", base_url="http://x/v1", model="m", stored_api_key="sk-secret-123")
    settings = EndpointSettings.from_endpoint(endpoint)
    assert "sk-secret" not in repr(endpoint) and "sk-secret" not in repr(settings)


@pytest.mark.django_db
def test_a_large_batch_is_sent_from_a_child_process_with_the_same_results(openai_server, monkeypatch):
    monkeypatch.setattr(client_module, "SEND_IN_PROCESS_FROM", 5)
    senders = []
    monkeypatch.setattr(
        client_module._SenderProcess, "start", spy(client_module._SenderProcess.start, senders)
    )
    settings = settings_for(openai_server, max_concurrency=4)
    requests = [LLMRequest(key=("item", i), messages=PROMPT, params={"seed": i}) for i in range(12)]
    seen: list = []
    summary = complete_many_sync(
        settings, requests, on_batch=lambda pairs: seen.extend((req.key, res.key) for req, res in pairs)
    )
    assert len(senders) == 1 and senders[0].process.pid != os.getpid()
    assert sorted(seen) == [(("item", i), ("item", i)) for i in range(12)]  # each result with its request
    assert summary.sent == 12 and openai_server.request_count == 12
    assert LLMCall.objects.count() == 12  # cache rows written by this process, the parent
    openai_server.latency_ms = 50
    stopped: list = []
    fresh = [LLMRequest(key=i, messages=PROMPT, params={"seed": 100 + i}) for i in range(40)]
    summary = complete_many_sync(
        settings, fresh, lambda req, res: stopped.append(res.key) or len(stopped) < 2
    )
    assert summary.stopped and len(stopped) == 2 and openai_server.request_count < 12 + 40


def spy(method, calls: list):
    def recording(self):
        calls.append(self)
        return method(self)

    return recording


def test_the_child_process_stops_sending_when_its_parent_dies(openai_server):
    """A worker killed mid-batch must leave no sender behind that keeps paying for calls nobody records."""
    openai_server.latency_ms = 50
    settings = settings_for(openai_server, max_concurrency=2)
    requests = [LLMRequest(key=i, messages=PROMPT, params={"seed": i}) for i in range(200)]

    def parent() -> None:  # stands in for the worker: starts the sender, then waits to be killed
        sender = client_module._SenderProcess(settings, requests)
        sender.start()
        time.sleep(60)

    worker = multiprocessing.get_context("fork").Process(target=parent)
    worker.start()
    deadline = time.monotonic() + 20
    while openai_server.request_count < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    time.sleep(0.5)  # the child notices within its stop poll (50 ms); in-flight answers may still land
    after_kill = openai_server.request_count
    time.sleep(1.0)
    assert 6 <= after_kill < 200 and openai_server.request_count == after_kill


def wait_for_count(server, count: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while server.request_count < count and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("sender_class", ["_SenderThread", "_SenderProcess"])
def test_a_sender_waits_for_its_results_to_be_recorded_once_it_is_a_bound_ahead(
    openai_server, monkeypatch, sender_class
):
    """Answers received and not yet committed are paid for and lost if the worker dies: the sender stops
    at concurrency + slack unrecorded requests and goes on as the caller records results."""
    monkeypatch.setattr(client_module.UnrecordedBound, "MIN_SLACK", 0)
    settings = settings_for(openai_server, max_concurrency=2)  # bound: 2 in flight + 2 × 2 waiting = 6
    assert client_module.UnrecordedBound.units(settings) == 6
    requests = [LLMRequest(key=i, messages=PROMPT, params={"seed": i}) for i in range(20)]
    sender = getattr(client_module, sender_class)(settings, requests)
    sender.start()
    try:
        wait_for_count(openai_server, 6)
        time.sleep(0.5)
        assert openai_server.request_count == 6  # nothing recorded: no seventh request
        received = [sender.get(timeout=5) for _ in range(6)]
        assert sorted(request.key for request, _ in received) == list(range(6))
        sender.recorded(4)
        wait_for_count(openai_server, 10)
        time.sleep(0.5)
        assert openai_server.request_count == 10
    finally:
        sender.stop.set()
        sender.close()


@pytest.mark.django_db
def test_a_batch_far_larger_than_the_bound_is_sent_whole_as_the_caller_records(openai_server, monkeypatch):
    monkeypatch.setattr(client_module, "SEND_IN_PROCESS_FROM", 5)
    monkeypatch.setattr(client_module.UnrecordedBound, "MIN_SLACK", 0)
    settings = settings_for(openai_server, max_concurrency=2)
    requests = [LLMRequest(key=i, messages=PROMPT, params={"seed": i}) for i in range(30)]
    seen: list = []
    summary = complete_many_sync(
        settings, requests, on_batch=lambda pairs: seen.extend(r.key for r, _ in pairs)
    )
    assert sorted(seen) == list(range(30)) and summary.sent == 30 and openai_server.request_count == 30
