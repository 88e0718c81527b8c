"""The local OpenAI-compatible test server, driven by the real openai client over HTTP."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from generation.testing.openai_server import OpenAICompatibleTestServer, Reply


def client_for(server: OpenAICompatibleTestServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=5)


def ask(server, **params):
    return client_for(server).chat.completions.create(
        model="test-model",
        messages=[{"role": "user", "content": "- topic: cats\n- label: positive"}],
        **params,
    )


def test_it_answers_n_choices_with_usage(openai_server):
    response = ask(openai_server, n=3)
    assert [choice.index for choice in response.choices] == [0, 1, 2]
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    answer = json.loads(response.choices[0].message.content)
    assert answer["label"] == "positive" and "topic cats" in answer["text"]


def test_it_fills_a_json_schema_from_the_prompts_conditions(openai_server):
    schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "label": {"type": "string", "enum": ["negative", "positive"]},
        },
        "required": ["text", "label"],
    }
    response = ask(
        openai_server, response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    )
    assert json.loads(response.choices[0].message.content)["label"] == "positive"


def test_it_returns_scripted_top_logprobs_in_the_openai_shape(openai_server):
    openai_server.responder = lambda body, index: Reply(
        "A", token_logprobs=[{"A": math.log(0.7), "B": math.log(0.3)}]
    )
    response = ask(openai_server, logprobs=True, top_logprobs=2, max_tokens=1)
    token = response.choices[0].logprobs.content[0]
    assert token.token == "A"
    assert [(alt.token, round(math.exp(alt.logprob), 2)) for alt in token.top_logprobs] == [
        ("A", 0.7),
        ("B", 0.3),
    ]


def test_it_lists_its_model(openai_server):
    assert [model.id for model in client_for(openai_server).models.list()] == ["test-model"]


def test_it_sends_429_with_retry_after_then_recovers(openai_server):
    openai_server.fail_next(1, "429", retry_after=2)
    with pytest.raises(openai.RateLimitError) as raised:
        ask(openai_server)
    assert raised.value.response.headers["retry-after"] == "2"
    assert ask(openai_server).choices
    assert openai_server.request_count == 2


def test_it_injects_server_errors_resets_and_malformed_bodies(openai_server):
    openai_server.fail_next(1, "500")
    openai_server.fail_next(1, "reset")
    openai_server.fail_next(1, "malformed")
    with pytest.raises(openai.InternalServerError):
        ask(openai_server)
    with pytest.raises(openai.APIConnectionError):
        ask(openai_server)
    with pytest.raises(json.JSONDecodeError):
        ask(openai_server)


def test_it_injects_refusals_and_empty_output(openai_server):
    openai_server.fail_next(1, "refusal")
    openai_server.fail_next(1, "empty")
    refused = ask(openai_server).choices[0].message
    assert refused.content is None and refused.refusal
    assert ask(openai_server).choices[0].message.content == ""


def test_it_rejects_unknown_fault_kinds(openai_server):
    with pytest.raises(ValueError, match="Unknown fault 'teapot'"):
        openai_server.fail_next(1, "teapot")


def test_it_serves_concurrent_requests_and_counts_each(openai_server):
    openai_server.latency_ms = 50
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: ask(openai_server), range(32)))
    assert len(results) == 32
    assert openai_server.request_count == 32
    assert len(openai_server.completed_at) == 32
