"""The `openai_server` fixture: a local OpenAI-compatible HTTP server (generation.openai_test_server).

    def test_it_labels(openai_server):
        openai_server.responder = lambda body, index: Reply("A", token_logprobs=[{"A": -0.1, "B": -2.3}])
        openai_server.fail_next(2, "429", retry_after=0.01)
        ... call the real client at openai_server.base_url ...
        assert openai_server.request_count == 3

Each test gets a fresh server (own port, empty fault schedule and request records).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from generation.testing.openai_server import OpenAICompatibleTestServer


@pytest.fixture
def openai_server() -> Iterator[OpenAICompatibleTestServer]:
    with OpenAICompatibleTestServer() as server:
        yield server
