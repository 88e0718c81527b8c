"""A local OpenAI-compatible HTTP server for tests and benchmarks (no Django, standard library only).

It speaks enough of the Chat Completions API for the real `openai` client to talk to it over real HTTP:

- ``POST /v1/chat/completions`` with ``n``, ``logprobs``/``top_logprobs`` (per-token top_logprobs in the
  OpenAI shape), ``response_format`` (``json_object`` / ``json_schema``), ``usage`` counts;
- ``GET /v1/models``;
- fault injection, scheduled per request: ``server.fail_next(3, "429", retry_after=0.05)`` makes the next
  three requests fail with that fault. Kinds (``FAULT_KINDS``): ``429`` (with ``Retry-After`` and
  ``retry-after-ms``), ``500``, ``slow`` (extra ``delay`` seconds before answering), ``malformed`` (a 200
  whose body is not JSON), ``reset`` (the connection is dropped without an answer), ``refusal`` (the
  message carries ``refusal`` and no content), ``empty`` (empty content), ``garbage`` (content that is not
  JSON);
- a global ``latency_ms`` added to every answer (the benchmark uses 200 ms).

Answers come from a pluggable responder ``responder(request_json, index) -> str | Reply``; ``index`` is the
choice index (0 … n-1). A ``Reply`` may carry a per-token logprob table so labelling tests can script label
distributions. The default responder is deterministic: it reads ``- name: value`` condition lines from the
last user message and answers a JSON object that satisfies the request's JSON schema (``text`` mentions the
conditions, ``label`` is the ``label`` condition when there is one).

Every request is recorded (thread-safe): ``server.request_count``, ``server.requests`` (parsed bodies in
arrival order), ``server.received_at`` / ``server.completed_at`` (monotonic timestamps), and
``server.body_hashes()`` for duplicate detection.

Usage::

    with OpenAICompatibleTestServer(latency_ms=20) as server:
        client = OpenAI(base_url=server.base_url, api_key="test")
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULT_KINDS = ("429", "500", "slow", "malformed", "reset", "refusal", "empty", "garbage")

CONDITION_LINE = re.compile(r"^\s*[-*]\s*([A-Za-z_][\w ]*?)\s*:\s*(.+?)\s*$", re.MULTILINE)


@dataclass
class Reply:
    """A scripted answer. `token_logprobs`: one dict {token: logprob} per generated token; the chosen token
    is the most probable one of each dict. Without it, logprobs are synthesised from the content."""

    content: str | None
    token_logprobs: list[dict[str, float]] | None = None
    refusal: str | None = None
    finish_reason: str = "stop"


@dataclass
class Fault:
    kind: str
    retry_after: float = 0.05
    delay: float = 0.0
    status: int = 500


Responder = Callable[[dict, int], "str | Reply"]


def count_tokens(text: str) -> int:
    """A rough token count (words and punctuation), good enough for usage numbers in tests."""
    return len(re.findall(r"\w+|[^\w\s]", text or ""))


def request_body_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def last_user_message(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


def conditions_in(text: str) -> dict[str, str]:
    """The last block of consecutive '- name: value' lines (label lists come earlier in our prompts)."""
    blocks: list[dict[str, str]] = []
    previous_line = -2
    for number, line in enumerate(text.splitlines()):
        match = CONDITION_LINE.match(line)
        if not match:
            continue
        if number != previous_line + 1:
            blocks.append({})
        blocks[-1][match.group(1).strip()] = match.group(2)
        previous_line = number
    return blocks[-1] if blocks else {}


def _schema_of(body: dict) -> dict | None:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or {}
    return None


def _value_for(name: str, schema: dict, conditions: dict[str, str], text: str, index: int) -> Any:
    kind = schema.get("type", "string")
    if "enum" in schema and schema["enum"]:
        wanted = conditions.get(name) or conditions.get("label")
        return wanted if wanted in schema["enum"] else schema["enum"][0]
    if kind == "integer":
        return index
    if kind == "number":
        return float(index)
    if kind == "boolean":
        return True
    if kind == "array":
        return [_value_for(name, schema.get("items") or {}, conditions, text, index)]
    if kind == "object":
        return {
            key: _value_for(key, sub, conditions, text, index)
            for key, sub in (schema.get("properties") or {}).items()
        }
    if name == "text":
        return text
    if name in conditions:
        return conditions[name]
    return f"{name} {index}"


def default_responder(body: dict, index: int) -> str:
    """Deterministic answer derived from the prompt: JSON with `text` (mentioning the conditions) and `label`."""
    prompt = last_user_message(body)
    conditions = conditions_in(prompt)
    digest = hashlib.sha256(
        json.dumps([body.get("messages"), body.get("seed")], sort_keys=True).encode()
    ).hexdigest()[:8]
    described = ", ".join(f"{name} {value}" for name, value in conditions.items() if name != "label")
    text = f"Synthetic example {digest}-{index}" + (f" with {described}" if described else "") + "."
    schema = _schema_of(body)
    if schema:
        answer = _value_for("", {**schema, "type": "object"}, conditions, text, index)
    else:
        answer = {"text": text, "label": conditions.get("label", "")}
    return json.dumps(answer)


def synthesise_logprobs(content: str, top_k: int) -> list[dict[str, float]]:
    """A confident logprob table for content without a scripted one: each token at log(0.9)."""
    tokens = re.findall(r"\s*\S+", content) or [content]
    tables = []
    for token in tokens:
        table = {token: math.log(0.9)}
        for alt in range(1, max(1, top_k)):
            table[f"{token.strip()}_{alt}"] = math.log(0.1 / max(1, top_k - 1))
        tables.append(table)
    return tables


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waited for the client's
    # delayed ACK (~40 ms a request on Linux loopback).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default stderr log
        return

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path.rstrip("/").endswith("/models"):
            owner = self.server.owner
            self._send_json(
                200, {"object": "list", "data": [{"id": owner.model, "object": "model", "owned_by": "test"}]}
            )
        else:
            self._send_json(404, {"error": {"message": f"No route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"No route {self.path}", "type": "not_found"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "Body is not JSON", "type": "invalid_request_error"}})
            return
        fault = owner._record_and_take_fault(body)
        started = time.monotonic()
        delay = owner.latency_ms / 1000.0 + (fault.delay if fault and fault.kind == "slow" else 0.0)
        if delay:
            time.sleep(delay)
        if fault and fault.kind == "reset":
            # SO_LINGER 0: close() sends RST, the client sees a connection reset with no response.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault and fault.kind == "429":
            self._send_json(
                429,
                {"error": {"message": "Rate limit reached (test server)", "type": "rate_limit_error"}},
                {
                    "Retry-After": f"{fault.retry_after:g}",
                    "retry-after-ms": str(int(fault.retry_after * 1000)),
                },
            )
            return
        if fault and fault.kind == "500":
            self._send_json(
                fault.status, {"error": {"message": "Injected server error", "type": "server_error"}}
            )
            return
        # Recorded before the bytes go out, so a client that has its answer always finds it counted.
        if fault and fault.kind == "malformed":
            owner._record_completed(started)
            self._send_json(200, b'{"id": "chatcmpl-broken", "choices": [ this is not json')
            return
        payload = owner.completion(body, fault)
        owner._record_completed(started)
        self._send_json(200, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    owner: OpenAICompatibleTestServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Dropped connections (the `reset` fault, clients that hang up) are expected here: no traceback.
        return


class OpenAICompatibleTestServer:
    """Start with `start()` or as a context manager; `base_url` ends with /v1."""

    def __init__(
        self,
        *,
        latency_ms: float = 0,
        responder: Responder | None = None,
        model: str = "test-model",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency_ms = latency_ms
        self.responder: Responder = responder or default_responder
        self.model = model
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[dict] = []
        self.received_at: list[float] = []
        self.completed_at: list[float] = []
        self.answer_seconds: list[float] = []  # from reading a request to answering it (latency included)

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> OpenAICompatibleTestServer:
        self._httpd = _Server((self._host, self._port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="openai-test-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OpenAICompatibleTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    # fault schedule and records ---------------------------------------------------------------------------
    def fail_next(
        self, count: int, kind: str, *, retry_after: float = 0.05, delay: float = 0.0, status: int = 500
    ) -> None:
        """Make the next `count` chat requests fail with `kind` (one of FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.extend(
                Fault(kind, retry_after=retry_after, delay=delay, status=status) for _ in range(count)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_records(self) -> None:
        with self._lock:
            self.requests.clear()
            self.received_at.clear()
            self.completed_at.clear()
            self.answer_seconds.clear()

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def body_hashes(self) -> list[str]:
        with self._lock:
            return [request_body_hash(body) for body in self.requests]

    def _record_and_take_fault(self, body: dict) -> Fault | None:
        with self._lock:
            self.requests.append(body)
            self.received_at.append(time.monotonic())
            return self._faults.popleft() if self._faults else None

    def _record_completed(self, started: float) -> None:
        now = time.monotonic()
        with self._lock:
            self.completed_at.append(now)
            self.answer_seconds.append(now - started)

    # answers -----------------------------------------------------------------------------------------------
    def completion(self, body: dict, fault: Fault | None = None) -> dict:
        count = max(1, int(body.get("n") or 1))
        want_logprobs = bool(body.get("logprobs"))
        top_k = int(body.get("top_logprobs") or 0)
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in body.get("messages") or [])
        choices, completion_tokens = [], 0
        for index in range(count):
            reply = self.responder(body, index)
            if isinstance(reply, str):
                reply = Reply(content=reply)
            if fault and fault.kind == "refusal":
                reply = Reply(content=None, refusal="I can't help with that request.")
            elif fault and fault.kind == "empty":
                reply = Reply(content="")
            elif fault and fault.kind == "garbage":
                reply = Reply(content="<<garbage>> not json {")
            content = reply.content
            completion_tokens += count_tokens(content or reply.refusal or "")
            choice: dict[str, Any] = {
                "index": index,
                "message": {"role": "assistant", "content": content, "refusal": reply.refusal},
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
            if want_logprobs and content is not None:
                tables = reply.token_logprobs or synthesise_logprobs(content, top_k)
                choice["logprobs"] = {
                    "content": [self._token_entry(table, top_k) for table in tables],
                    "refusal": None,
                }
            choices.append(choice)
        return {
            "id": f"chatcmpl-test-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @staticmethod
    def _token_entry(table: dict[str, float], top_k: int) -> dict:
        ranked = sorted(table.items(), key=lambda item: -item[1])
        token, logprob = ranked[0]
        return {
            "token": token,
            "logprob": logprob,
            "bytes": list(token.encode()),
            "top_logprobs": [
                {"token": alt, "logprob": alt_logprob, "bytes": list(alt.encode())}
                for alt, alt_logprob in ranked[: max(0, top_k)]
            ],
        }
