"""The one LLM client path, shared by generation and annotation: the `openai` package against any
OpenAI-compatible endpoint, with our own retries, rate limits, concurrency bound, token accounting, cost and
a cache of calls.

API (import from here; annotation may use all of it):

``complete(endpoint, messages, *, json_schema=None, use_cache=True, **params) -> CompletionResult``
    One call. ``endpoint`` is an ``LLMEndpoint`` row or an ``EndpointSettings``. ``params`` are Chat
    Completions parameters: temperature, top_p, max_tokens, n, seed, stop, logprobs, top_logprobs.

``complete_many_sync(endpoint, requests, on_result, *, use_cache=True, should_stop=None) -> BatchSummary``
    Many calls, up to ``endpoint.max_concurrency`` in flight. ``requests`` are ``LLMRequest(key, messages,
    params, json_schema)``; ``key`` is yours (e.g. an item id). ``on_result(request, result)`` is called in
    the calling thread as results arrive, inside a transaction that also writes the cache row — so commit
    your per-item result there and a crashed run resumes without re-sending finished calls. Return
    ``False`` from ``on_result`` (or ``True`` from ``should_stop()``, polled about twice a second) to stop:
    requests not yet sent are dropped, in-flight ones are abandoned. Cache hits are delivered first, with
    ``result.cached`` True and no HTTP request. Alternatively pass ``on_batch=callback`` taking a list of
    ``(request, result)`` pairs that arrived together (one transaction per group, for bulk writes).

``complete_many(settings, requests, on_result)`` (async)
    The same without cache or database: ``on_result`` is a plain callable run on the event loop.

``CompletionResult``: ``content`` (first choice), ``choices`` (all contents), ``parsed`` (per choice: the
JSON object when ``json_schema`` was given and it parsed and validated, else None), ``choice_errors`` (per
choice: '' or an error kind), ``logprobs`` (per choice: [{token, logprob, top_logprobs: [{token, logprob}]}]
or None), ``prompt_tokens``, ``completion_tokens``, ``cost``, ``cached``, ``error_kind`` ('' when at least
one choice is usable), ``error`` (message), ``attempts``, ``response`` (the raw JSON), ``ok``.

Error kinds (``ErrorKind``): http_error, timeout, connection, invalid_json (the body, or the content when JSON
was asked for), schema_mismatch, refusal, empty_output. Retried: 429, 408/409, 5xx, timeouts, connection
errors, malformed bodies — with exponential backoff (``backoff_base`` · 2^attempt, jittered, capped) or the
server's ``Retry-After``/``retry-after-ms`` when given. After ``max_retries`` the result carries the error.

``json_schema``: sent as ``response_format={"type": "json_schema", ...}`` when the endpoint supports it;
the content is validated against it on return either way (``generation.llm.schema.validate``).
When the endpoint does not support logprobs, ``logprobs``/``top_logprobs`` are not sent.

The cache key is sha256 of (base_url, model, messages, effective params); only answers that arrived with a
valid body are cached. The concurrency bound holds per batch. The RPM/TPM limits of an endpoint row hold
for every worker sending to it together (all shards and runs: ``generation.rate_limit``, a budget in the
database); settings without an endpoint row are limited per batch.
The API key is never logged or included in reprs.

Nothing is sent where it must not go: every batch checks the base URL against the outbound policy
(``generation.outbound``: no loopback/private/link-local/… address unless the operator allowed it) before it
connects, the HTTP client re-checks every request and follows no redirects, and an endpoint whose key may not
be used (``generation.endpoint_keys``: a variable the operator did not allow, a stored key that no longer
decrypts) sends nothing. Such batches fail every request at once with ``connection`` and the reason.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from generation.endpoint_keys import KeyUnavailable
from generation.llm.outbound import (
    REFUSED_HINT,
    REFUSED_PRIVATE,
    OutboundGuard,
    OutboundPolicy,
    RefusedDestination,
)
from generation.llm.schema import validate
from generation.rate_limit import Limits, Permits, SharedRateLimit

logger = logging.getLogger(__name__)
logging.getLogger("httpx2").setLevel(logging.WARNING)  # one INFO line per request otherwise


class ErrorKind:
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    INVALID_JSON = "invalid_json"
    SCHEMA_MISMATCH = "schema_mismatch"
    REFUSAL = "refusal"
    EMPTY_OUTPUT = "empty_output"
    ALL = (HTTP_ERROR, TIMEOUT, CONNECTION, INVALID_JSON, SCHEMA_MISMATCH, REFUSAL, EMPTY_OUTPUT)
    LABELS = {
        HTTP_ERROR: "HTTP error",
        TIMEOUT: "Timeout",
        CONNECTION: "Connection failed",
        INVALID_JSON: "Invalid JSON",
        SCHEMA_MISMATCH: "Schema mismatch",
        REFUSAL: "Refusal",
        EMPTY_OUTPUT: "Empty output",
    }


BATCH_WINDOW_SECONDS = 0.05
SENT_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "n",
    "seed",
    "stop",
    "logprobs",
    "top_logprobs",
    "response_format",
)


@dataclass(frozen=True)
class EndpointSettings:
    base_url: str
    model: str
    api_key: str = field(default="no-key", repr=False)
    max_concurrency: int = 8
    rpm: int = 0
    tpm: int = 0
    timeout: float = 60.0
    max_retries: int = 4
    price_input_per_1k: float = 0.0
    price_output_per_1k: float = 0.0
    supports_response_format: bool = True
    supports_logprobs: bool = True
    endpoint_id: int | None = None
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    # Why no request may be sent at all (the key variable is not allowed, the stored key is unreadable): the
    # batch then fails every request at once without opening a connection.
    refusal: str = ""

    @classmethod
    def from_endpoint(cls, endpoint: Any, **overrides: Any) -> EndpointSettings:
        if isinstance(endpoint, EndpointSettings):
            return endpoint if not overrides else _replace(endpoint, **overrides)
        try:
            api_key, refusal = endpoint.resolved_api_key(), ""
        except KeyUnavailable as problem:
            api_key, refusal = "no-key", str(problem)
        values = dict(
            base_url=endpoint.base_url,
            model=endpoint.model,
            api_key=api_key,
            refusal=refusal,
            max_concurrency=max(1, endpoint.max_concurrency),
            rpm=endpoint.rpm,
            tpm=endpoint.tpm,
            timeout=endpoint.timeout_seconds,
            max_retries=endpoint.max_retries,
            price_input_per_1k=float(endpoint.price_input_per_1k),
            price_output_per_1k=float(endpoint.price_output_per_1k),
            supports_response_format=endpoint.supports_response_format,
            supports_logprobs=endpoint.supports_logprobs,
            endpoint_id=endpoint.pk,
        )
        values.update(overrides)
        return cls(**values)

    def share_concurrency(self, parts: int) -> EndpointSettings:
        """This endpoint's concurrency bound split into `parts` equal shares (at least 1 each); the RPM/TPM
        limits stay whole, for senders that take from the endpoint's shared budget (generation.rate_limit)."""
        if parts <= 1:
            return self
        return _replace(self, max_concurrency=max(1, self.max_concurrency // parts))

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens / 1000 * self.price_input_per_1k
            + completion_tokens / 1000 * self.price_output_per_1k
        )


def _replace(settings: EndpointSettings, **changes: Any) -> EndpointSettings:
    from dataclasses import replace

    return replace(settings, **changes)


@dataclass
class LLMRequest:
    key: Hashable
    messages: list[dict]
    params: dict = field(default_factory=dict)
    json_schema: dict | None = None
    # (effective params, cache key, estimated tokens), computed once by `shaped` (the cache lookup, the send
    # and the cache write all need them; recomputing cost a JSON encode and a sha256 per use)
    _shaped: tuple[dict, str, int] | None = field(default=None, repr=False, compare=False)


@dataclass
class CompletionResult:
    key: Hashable = None
    choices: list[str | None] = field(default_factory=list)
    parsed: list[Any] = field(default_factory=list)
    choice_errors: list[str] = field(default_factory=list)
    logprobs: list[list[dict] | None] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached: bool = False
    error_kind: str = ""
    error: str = ""
    attempts: int = 0
    response: dict | None = None
    cache_key: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_kind

    @property
    def content(self) -> str | None:
        return self.choices[0] if self.choices else None


@dataclass
class BatchSummary:
    sent: int = 0
    cached: int = 0
    failed: int = 0
    stopped: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


# -- request shaping and the cache key ---------------------------------------------------------------------


def effective_params(settings: EndpointSettings, request: LLMRequest) -> dict:
    """The parameters actually sent, given what the endpoint supports."""
    params = {
        name: value for name, value in request.params.items() if name in SENT_PARAMS and value is not None
    }
    if not settings.supports_logprobs:
        params.pop("logprobs", None)
        params.pop("top_logprobs", None)
    if request.json_schema and settings.supports_response_format and "response_format" not in params:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": request.json_schema},
        }
    if not settings.supports_response_format:
        params.pop("response_format", None)
    return params


def cache_key(settings: EndpointSettings, messages: Sequence[dict], params: dict) -> str:
    payload = {
        "base_url": settings.base_url.rstrip("/"),
        "model": settings.model,
        "messages": list(messages),
        "params": params,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def shaped(settings: EndpointSettings, request: LLMRequest) -> tuple[dict, str, int]:
    """(effective params, cache key, estimated tokens) of a request, computed once per request."""
    if request._shaped is None:
        params = effective_params(settings, request)
        request._shaped = (
            params,
            cache_key(settings, request.messages, params),
            estimate_tokens(request.messages, params),
        )
    return request._shaped


def estimate_tokens(messages: Sequence[dict], params: dict) -> int:
    """Rough token estimate (4 characters a token) for TPM limiting and cost previews."""
    prompt = sum(len(str(message.get("content") or "")) for message in messages) // 4 + 4 * len(messages)
    return prompt + int(params.get("max_tokens") or 256) * int(params.get("n") or 1)


# -- reading answers ---------------------------------------------------------------------------------------

FENCED_JSON = re.compile(r"```(?:json)?\s*(\{.*\}|\[.*\])\s*```", re.DOTALL)


def parse_json_content(content: str) -> Any:
    """JSON from a model's content; tolerates a ```json fence or prose around one object. Raises ValueError."""
    text = content.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    fenced = FENCED_JSON.search(text)
    if fenced:
        return json.loads(fenced.group(1))
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        return json.loads(text[start : end + 1])
    raise ValueError("no JSON object in the answer")


def read_response(
    settings: EndpointSettings,
    request: LLMRequest,
    body: dict,
    *,
    cached: bool,
    attempts: int = 0,
    key: str = "",
) -> CompletionResult:
    """A CompletionResult from a response body (fresh or from the cache)."""
    usage = body.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    result = CompletionResult(
        key=request.key,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=0.0 if cached else settings.cost(prompt_tokens, completion_tokens),
        cached=cached,
        attempts=attempts,
        response=body,
        cache_key=key,
    )
    raw_choices = body.get("choices")
    if not isinstance(raw_choices, list) or not raw_choices:
        result.error_kind, result.error = ErrorKind.EMPTY_OUTPUT, "The answer had no choices."
        return result
    for choice in sorted(raw_choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0):
        message = (choice or {}).get("message") or {}
        content = message.get("content")
        result.choices.append(content)
        result.logprobs.append(
            ((choice.get("logprobs") or {}).get("content")) if choice.get("logprobs") else None
        )
        error, parsed = "", None
        if message.get("refusal"):
            error = ErrorKind.REFUSAL
        elif content is None or not str(content).strip():
            error = ErrorKind.EMPTY_OUTPUT
        elif request.json_schema is not None:
            try:
                parsed = parse_json_content(str(content))
            except ValueError:
                error = ErrorKind.INVALID_JSON
            else:
                if not schema_allows(request.json_schema, parsed):
                    error, parsed = ErrorKind.SCHEMA_MISMATCH, None
        result.parsed.append(parsed)
        result.choice_errors.append(error)
    if all(result.choice_errors):
        result.error_kind = result.choice_errors[0]
        first = raw_choices[0].get("message") or {}
        problems = (
            validate(_safe_json(result.choices[0]), request.json_schema)
            if result.error_kind == ErrorKind.SCHEMA_MISMATCH
            else []
        )
        result.error = {
            ErrorKind.REFUSAL: f"The model refused: {first.get('refusal')}",
            ErrorKind.EMPTY_OUTPUT: "The model returned no text.",
            ErrorKind.INVALID_JSON: "The answer is not valid JSON.",
            ErrorKind.SCHEMA_MISMATCH: "The answer does not match the schema: " + "; ".join(problems[:3]),
        }.get(result.error_kind, result.error_kind)
    return result


_VALIDATORS: dict[int, tuple[dict, Any]] = {}


def schema_allows(schema: dict, value: Any) -> bool:
    """Whether `value` is valid against `schema`, with one compiled validator per schema object.

    Why not ``schema.validate`` here: it builds a validator (and its reference registry) on every call to
    collect located error messages, which cost as much CPU per answer as parsing it (issue 16); the messages
    are only needed for the rare invalid answer, and ``read_response`` asks ``validate`` for them then. A
    batch's requests share one schema object, so the cache holds a few entries (kept with the schema itself,
    so a reused id() never picks up another schema's validator)."""
    cached = _VALIDATORS.get(id(schema))
    if cached is None or cached[0] is not schema:
        from jsonschema import Draft202012Validator

        if len(_VALIDATORS) > 32:
            _VALIDATORS.clear()
        cached = _VALIDATORS[id(schema)] = (schema, Draft202012Validator(schema))
    return cached[1].is_valid(value)


def _safe_json(content: str | None) -> Any:
    try:
        return parse_json_content(content or "")
    except ValueError:
        return None


# -- rate limiting -----------------------------------------------------------------------------------------


class RateLimiter:
    """Sliding one-minute window over requests (RPM) and estimated tokens (TPM); 0 means no limit."""

    def __init__(self, rpm: int = 0, tpm: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rpm, self.tpm, self.clock = rpm, tpm, clock
        self.events: deque[tuple[float, int]] = deque()
        self.used = 0

    def delay_needed(self, tokens: int) -> float:
        """Seconds to wait before a request of `tokens` may go; 0 when it may go now (and it is recorded)."""
        if not self.rpm and not self.tpm:
            return 0.0
        now = self.clock()
        while self.events and self.events[0][0] <= now - 60:
            self.used -= self.events.popleft()[1]
        too_many = self.rpm and len(self.events) >= self.rpm
        too_big = self.tpm and self.events and self.used + tokens > self.tpm
        if too_many or too_big:
            return max(0.01, self.events[0][0] + 60 - now)
        self.events.append((now, tokens))
        self.used += tokens
        return 0.0

    async def acquire(self, tokens: int) -> None:
        while True:
            delay = self.delay_needed(tokens)
            if not delay:
                return
            await asyncio.sleep(delay)


# -- sending -----------------------------------------------------------------------------------------------


def retry_delay(settings: EndpointSettings, attempt: int, headers: Any = None) -> float:
    """Retry-After / retry-after-ms when the server gives one, else jittered exponential backoff."""
    if headers is not None:
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            raw = headers.get(name)
            if raw:
                try:
                    return min(60.0, max(0.0, float(raw) * scale))
                except ValueError:
                    continue
    return min(
        settings.backoff_max, settings.backoff_base * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)
    )


async def _send_one(
    client: Any,
    settings: EndpointSettings,
    request: LLMRequest,
    limiter: RateLimiter | Permits,
    semaphore: asyncio.Semaphore,
) -> CompletionResult:
    import httpx2
    import openai

    params, key, tokens = shaped(settings, request)
    attempt, kind, message = 0, "", ""
    while attempt <= settings.max_retries:
        attempt += 1
        headers = None
        await limiter.acquire(tokens)
        async with semaphore:
            try:
                # client.request (what client.post calls) with a raw-response cast: the openai client's
                # transport, auth and error classes, without re-validating our already-shaped parameters
                # on every call (that cost more CPU per request than everything else at high
                # concurrency), and with options copied from a template (_request_options).
                response = await client.request(
                    httpx2.Response,
                    _request_options(
                        settings,
                        {"model": settings.model, "messages": request.messages, **params},
                        key,
                    ),
                )
                raw = response.content
                try:
                    body = json.loads(raw)  # bytes: json detects the UTF encoding itself
                    if not isinstance(body, dict):
                        raise ValueError("not an object")
                except ValueError:
                    kind, message = (
                        ErrorKind.INVALID_JSON,
                        "The endpoint answered a body that is not JSON: "
                        f"{raw[:80].decode('utf-8', 'replace')!r}",
                    )
                else:
                    return read_response(settings, request, body, cached=False, attempts=attempt, key=key)
            except openai.APITimeoutError as error:
                if _dropped_connection(error):
                    kind, message = ErrorKind.CONNECTION, f"Could not connect to {settings.base_url}: {error}"
                else:
                    kind, message = ErrorKind.TIMEOUT, f"No answer within {settings.timeout:g} s."
            except openai.APIConnectionError as error:
                if isinstance(
                    error.__cause__, RefusedDestination
                ):  # the outbound policy: retrying cannot help
                    kind, message = ErrorKind.CONNECTION, str(error.__cause__)
                    break
                kind, message = (
                    ErrorKind.CONNECTION,
                    f"Could not connect to {settings.base_url}: {error.__cause__ or error}",
                )
            except openai.APIStatusError as error:
                kind, message = ErrorKind.HTTP_ERROR, f"HTTP {error.status_code}: {_error_text(error)}"
                headers = error.response.headers
                if error.status_code not in (408, 409, 429) and error.status_code < 500:
                    break
        if attempt <= settings.max_retries:
            await asyncio.sleep(retry_delay(settings, attempt, headers))
    return CompletionResult(
        key=request.key,
        error_kind=kind,
        error=f"{message} (after {attempt} attempt{'s' * (attempt != 1)})",
        attempts=attempt,
        cache_key=key,
    )


_OPTIONS_TEMPLATES: dict[str, Any] = {}


def _request_options(settings: EndpointSettings, body: dict, key: str) -> Any:
    """The openai client's options for one chat completion: what ``client.post`` would build, copied from a
    template per URL instead of constructed.

    Why: ``FinalRequestOptions.construct`` deep-copies every field default on each call, and the relative
    URL is merged into the base URL again on every request; together about a fifth of the client's CPU per
    request at concurrency 128 (issue 16, profiled). The template carries the absolute URL; a shallow copy
    per request sets the body. The idempotency key is the request's cache key (the same request keeps its
    key across our retries; the openai client sends it only to APIs that take one, and computes a random
    one per request otherwise)."""
    from openai._models import FinalRequestOptions

    url = settings.base_url.rstrip("/") + "/chat/completions"
    template = _OPTIONS_TEMPLATES.get(url)
    if template is None:
        if len(_OPTIONS_TEMPLATES) > 32:
            _OPTIONS_TEMPLATES.clear()
        template = _OPTIONS_TEMPLATES[url] = FinalRequestOptions.construct(method="post", url=url)
    return template.model_copy(update={"json_data": body, "idempotency_key": key})


def _dropped_connection(error: BaseException) -> bool:
    """Whether a timeout the openai client reports is really a dropped connection. Why: the aiohttp
    transport maps every ``aiohttp.ClientConnectionError`` (a reset, a server that closed the connection)
    to httpx's ``ConnectTimeout``, so the original aiohttp error down the cause chain tells them apart."""
    import aiohttp

    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError):
            return not isinstance(cause, aiohttp.ServerTimeoutError | asyncio.TimeoutError)
        cause = cause.__cause__
    return False


def _error_text(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:200]
    return str(error)[:200]


def _make_client(settings: EndpointSettings, policy: OutboundPolicy) -> Any:
    """The one place the openai client is built. Its HTTP client follows no redirects (a 3xx is an error: an
    OpenAI-compatible API does not redirect, and a redirect could point at a refused address) and checks
    every request's destination against the outbound policy (generation.outbound).

    Why aiohttp (``openai.DefaultAioHttpClient``, the ``openai[aiohttp]`` extra) rather than the default
    httpx pool: the httpx pool re-examines every pooled connection on each request, so its CPU per request
    grows with the concurrency. Measured (issue 16; 2,000 requests at concurrency 128 against the test
    server, CPU of the event-loop thread per request): httpx defaults 1.84–1.98 ms, httpx with the pool
    sized to the concurrency 1.94–2.31 ms, aiohttp 1.27–1.29 ms. The aiohttp transport is still an httpx2
    client: the request hook (``OutboundGuard``) runs on every request and pins it to the checked address
    (the transport passes the ``sni_hostname`` it sets on to TLS), and the transport itself never follows
    redirects. The pool holds exactly as many connections as requests may be in flight."""
    import httpx2
    import openai

    pool = httpx2.Limits(
        max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency
    )
    http_client = openai.DefaultAioHttpClient(
        follow_redirects=False,
        event_hooks={"request": [OutboundGuard(policy)]},
        timeout=settings.timeout,
        limits=pool,
    )
    return openai.AsyncOpenAI(
        base_url=settings.base_url,
        api_key=settings.api_key,
        max_retries=0,
        timeout=settings.timeout,
        http_client=http_client,
    )


def preflight_refusal(settings: EndpointSettings, policy: OutboundPolicy) -> str:
    """Why a batch to this endpoint must not start ('' when it may): checked before any connection."""
    return settings.refusal or policy.check(settings.base_url)[0]


async def complete_many(
    settings: EndpointSettings,
    requests: Sequence[LLMRequest],
    on_result: Callable[[LLMRequest, CompletionResult], Any],
    *,
    stop: threading.Event | _StopOrOrphaned | None = None,
    permits: Permits | None = None,
    unrecorded: Any = None,
) -> None:
    """Send requests with at most `max_concurrency` in flight; call on_result as each finishes (no cache).
    Rate limits: `permits` granted by the endpoint's shared limiter (generation.rate_limit), else this
    batch's own RateLimiter. `unrecorded`: a semaphore (threading or multiprocessing) with one unit per
    request that may be sent and not yet recorded by the caller; a request takes a unit before it is sent,
    the caller gives it back once the result is committed (see UnrecordedBound)."""
    if not requests:
        return
    stop = stop or threading.Event()
    policy = OutboundPolicy.from_settings()
    refusal = await asyncio.to_thread(preflight_refusal, settings, policy)  # getaddrinfo blocks
    if refusal:
        for request in requests:
            result = CompletionResult(
                key=request.key,
                error_kind=ErrorKind.CONNECTION,
                error=refusal,
                cache_key=shaped(settings, request)[1],
            )
            if stop.is_set() or on_result(request, result) is False:
                return
        return
    client = _make_client(settings, policy)
    semaphore = asyncio.Semaphore(settings.max_concurrency)
    limiter = permits or RateLimiter(settings.rpm, settings.tpm)
    pending: deque[LLMRequest] = deque(requests)
    waiting_for_unit = asyncio.Lock()

    async def worker() -> None:
        while pending and not stop.is_set():
            if unrecorded is not None:
                async with waiting_for_unit:  # one worker polls while the caller is behind, the rest queue
                    while not unrecorded.acquire(False):
                        if stop.is_set():
                            return
                        await asyncio.sleep(UnrecordedBound.POLL_SECONDS)
                if not pending:
                    unrecorded.release()
                    return
            request = pending.popleft()
            result = await _send_one(client, settings, request, limiter, semaphore)
            if stop.is_set():
                return
            if on_result(request, result) is False:
                stop.set()

    workers = [asyncio.create_task(worker()) for _ in range(min(settings.max_concurrency, len(requests)))]

    async def watch_stop() -> None:
        while not all(task.done() for task in workers):
            if stop.is_set():
                for task in workers:
                    task.cancel()
                return
            await asyncio.sleep(0.05)

    try:
        await asyncio.gather(watch_stop(), *workers, return_exceptions=True)
    finally:
        await client.close()


def complete_many_sync(
    endpoint: Any,
    requests: Sequence[LLMRequest],
    on_result: Callable[[LLMRequest, CompletionResult], Any] | None = None,
    *,
    on_batch: Callable[[list[tuple[LLMRequest, CompletionResult]]], Any] | None = None,
    use_cache: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> BatchSummary:
    """See the module docstring. Database work (cache and callbacks) happens in the calling thread.

    Give `on_result(request, result)` per result, or `on_batch([(request, result), …])` per group of
    results that arrived together (one transaction each: bulk writes are much cheaper at high rates)."""
    if (on_result is None) == (on_batch is None):
        raise ValueError("Give exactly one of on_result and on_batch.")
    deliver = on_batch or (lambda pairs: _deliver_each(on_result, pairs))
    from django.db import transaction

    from generation.bulk_writes import insert_rows
    from generation.models import LLMCall

    settings = EndpointSettings.from_endpoint(endpoint)
    summary = BatchSummary()

    def account(result: CompletionResult) -> None:
        summary.cached += result.cached
        summary.sent += not result.cached
        summary.failed += not result.ok
        summary.prompt_tokens += result.prompt_tokens
        summary.completion_tokens += result.completion_tokens
        summary.cost += result.cost

    misses: list[LLMRequest] = list(requests)
    if use_cache and requests:
        keys = {id(r): shaped(settings, r)[1] for r in requests}
        stored: dict[str, dict] = {}
        unique = list(set(keys.values()))
        for start in range(0, len(unique), 500):
            stored.update(
                LLMCall.objects.filter(key__in=unique[start : start + 500]).values_list("key", "response")
            )
        hits = [r for r in requests if keys[id(r)] in stored]
        misses = [r for r in requests if keys[id(r)] not in stored]
        for start in range(0, len(hits), 200):
            pairs = [
                (
                    request,
                    read_response(
                        settings, request, stored[keys[id(request)]], cached=True, key=keys[id(request)]
                    ),
                )
                for request in hits[start : start + 200]
            ]
            with transaction.atomic():
                for _, result in pairs:
                    account(result)
                if deliver(pairs) is False:
                    summary.stopped = True
            if summary.stopped or (should_stop and should_stop()):
                summary.stopped = True
                return summary
    if not misses:
        return summary

    limit = shared_limit_for(settings, misses)
    sender = (_SenderProcess if len(misses) >= SEND_IN_PROCESS_FROM else _SenderThread)(
        settings, misses, shared=limit is not None
    )
    feed = PermitFeed(limit, sender.grants)
    stop = sender.stop
    feed.top_up()
    sender.start()
    last_poll = time.monotonic()
    try:
        while True:
            feed.top_up()
            try:
                batch = [sender.get(timeout=0.2)]
            except queue.Empty:
                batch = []
            if batch:
                time.sleep(BATCH_WINDOW_SECONDS)  # let more results arrive: one transaction for the group
            while True:
                try:
                    batch.append(sender.get(timeout=0))
                except queue.Empty:
                    break
            if batch:
                with transaction.atomic():
                    if use_cache:
                        insert_rows(
                            LLMCall,
                            [
                                LLMCall(
                                    key=res.cache_key,
                                    endpoint_id=settings.endpoint_id,
                                    base_url=settings.base_url,
                                    model=settings.model,
                                    request={
                                        "messages": req.messages,
                                        "params": shaped(settings, req)[0],
                                    },
                                    response=res.response,
                                    prompt_tokens=res.prompt_tokens,
                                    completion_tokens=res.completion_tokens,
                                    cost=res.cost,
                                )
                                for req, res in batch
                                if res.response is not None
                            ],
                            ignore_conflicts=True,
                        )
                    for _, res in batch:
                        account(res)
                    if deliver(batch) is False:
                        stop.set()
                sender.recorded(len(batch))
            if should_stop and time.monotonic() - last_poll > 0.5:
                last_poll = time.monotonic()
                if should_stop():
                    stop.set()
            if stop.is_set():
                summary.stopped = True
                break
            if sender.finished():
                break
    finally:
        stop.set()  # also when on_result raised: the sending must end
        sender.close()
    return summary


# Batches of at least this many requests not in the cache are sent from a child process (below).
SEND_IN_PROCESS_FROM = 200


class UnrecordedBound:
    """How many of a batch's requests may be sent and not yet recorded: the concurrency (what is in flight)
    plus a slack for answers that arrived and wait for the caller's next write.

    Why: the sender (a thread, or a forked process) reads answers faster than the caller writes them when
    the machine's cores are short. Two sharded workers with their senders and writers on two cores left up
    to 600 answers of one shard waiting in the pipe (issue 16, measured); each was paid for and lost when
    the worker was killed, and sent again on resume. With the bound that loss stays within the in-flight
    requests plus the slack (bench_generation --workers 2: 155–177 sent again in 3 runs; 8–772, median
    about 260, in 12 runs without).

    Why the slack is at least twice the concurrency (and 256): the writer of a just-resumed worker once
    paused 330 ms with 191 answers waiting at concurrency 128; a slack of one concurrency made the sender
    wait there and cost 0.02 of efficiency in paired runs, this one costs nothing measurable."""

    POLL_SECONDS = 0.005
    MIN_SLACK = 256

    @classmethod
    def units(cls, settings: EndpointSettings) -> int:
        return settings.max_concurrency + max(cls.MIN_SLACK, 2 * settings.max_concurrency)


def shared_limit_for(settings: EndpointSettings, requests: Sequence[LLMRequest]) -> SharedRateLimit | None:
    """The endpoint's shared RPM/TPM budget (generation.rate_limit) when it has limits and a row to keep
    them in; None otherwise (settings without an endpoint row keep a per-batch limiter)."""
    limits = Limits(settings.rpm, settings.tpm)
    if settings.endpoint_id is None or not limits.active or settings.refusal:
        return None
    largest = max((shaped(settings, request)[2] for request in requests), default=1)
    return SharedRateLimit(settings.endpoint_id, limits, largest)


class PermitFeed:
    """Keeps a sender supplied with blocks of permits from the shared limiter, one block queued ahead (the
    calling thread takes them: it has the database connection; the sender may be a forked process)."""

    MIN_GAP_SECONDS = 0.05  # a block just put may not show in a multiprocessing queue at once

    def __init__(self, limit: SharedRateLimit | None, grants: Any) -> None:
        self.limit, self.grants, self.last_put = limit, grants, 0.0

    def top_up(self) -> None:
        if self.limit is None or time.monotonic() - self.last_put < self.MIN_GAP_SECONDS:
            return
        if not self.grants.empty():
            return
        grant = self.limit.take()
        if grant is not None:
            self.grants.put(grant)
            self.last_put = time.monotonic()


class _SenderThread:
    """Sends a batch from an event loop in a thread of this process; results arrive in a queue."""

    def __init__(
        self, settings: EndpointSettings, requests: list[LLMRequest], *, shared: bool = False
    ) -> None:
        self.settings, self.requests, self.shared = settings, requests, shared
        self.stop = threading.Event()
        self.arrived: queue.Queue = queue.Queue()
        self.grants: queue.Queue = queue.Queue()
        self.ended = threading.Event()
        self.unrecorded = threading.Semaphore(UnrecordedBound.units(settings))
        self.thread = threading.Thread(target=self.run, name="llm-batch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        try:
            asyncio.run(
                complete_many(
                    self.settings,
                    self.requests,
                    lambda q, r: self.arrived.put((q, r)),
                    stop=self.stop,
                    permits=_permits(self.settings, self.grants) if self.shared else None,
                    unrecorded=self.unrecorded,
                )
            )
        except Exception:  # the batch must end; the caller sees the unsent requests as not done
            logger.exception("LLM batch loop failed")
        finally:
            self.ended.set()

    def recorded(self, count: int) -> None:
        """`count` results were committed: as many more requests may go out."""
        self.unrecorded.release(count)

    def get(self, timeout: float) -> tuple[LLMRequest, CompletionResult]:
        return self.arrived.get(timeout=timeout) if timeout else self.arrived.get_nowait()

    def finished(self) -> bool:
        return self.ended.is_set() and self.arrived.empty()

    def close(self) -> None:
        self.thread.join(timeout=30)


class _SenderProcess:
    """Sends a batch from an event loop in a child process (forked: it inherits the settings, the requests
    and the outbound policy's configuration without pickling them); each result comes back through a pipe
    as (position of its request, result).

    Why a process: the event loop (the openai client, HTTP, reading answers) and the writing of results
    (cache rows, samples, items: the caller's on_batch) each need most of a core at several hundred requests
    a second, and as two threads of one process they share one GIL: answers then wait while a batch is
    written, and the run sends in waves (issue 16). The child stops when told to (``stop``), and also when
    this process dies (it watches its parent), so a killed worker leaves no sender behind that would keep
    paying for calls nobody records."""

    def __init__(
        self, settings: EndpointSettings, requests: list[LLMRequest], *, shared: bool = False
    ) -> None:
        import multiprocessing

        import openai  # noqa: F401 - imported once here, not in every child (about a second of CPU each)

        context = multiprocessing.get_context("fork")
        self.settings, self.requests = settings, requests
        self.stop = context.Event()
        self.arrived = context.Queue()
        self.grants = context.Queue()
        self.unrecorded = context.Semaphore(UnrecordedBound.units(settings))
        self.ended = False
        self.process = context.Process(
            target=_send_in_child,
            args=(
                settings,
                requests,
                self.arrived,
                self.stop,
                os.getpid(),
                self.grants if shared else None,
                self.unrecorded,
            ),
            name="llm-batch",
            daemon=True,
        )

    def start(self) -> None:
        self.process.start()

    def recorded(self, count: int) -> None:
        """`count` results were committed: as many more requests may go out."""
        for _ in range(count):  # multiprocessing's semaphore releases one unit per call
            self.unrecorded.release()

    def get(self, timeout: float) -> tuple[LLMRequest, CompletionResult]:
        if self.ended:
            raise queue.Empty
        message = self.arrived.get(timeout=timeout) if timeout else self.arrived.get_nowait()
        if message is None:  # the child's last word
            self.ended = True
            raise queue.Empty
        position, result = message
        return self.requests[position], result

    def finished(self) -> bool:
        return self.ended or (not self.process.is_alive() and self.arrived.empty())

    def close(self) -> None:
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.arrived.close()
        self.grants.close()


class _StopOrOrphaned:
    """The child's stop signal: set by the parent, or the parent is gone (this process was re-parented)."""

    def __init__(self, stop: Any, parent_pid: int) -> None:
        self.event, self.parent_pid = stop, parent_pid

    def is_set(self) -> bool:
        return self.event.is_set() or os.getppid() != self.parent_pid

    def set(self) -> None:
        self.event.set()


def _permits(settings: EndpointSettings, grants: Any) -> Permits:
    return Permits(grants, Limits(settings.rpm, settings.tpm))


def _send_in_child(
    settings: EndpointSettings,
    requests: list[LLMRequest],
    arrived: Any,
    stop: Any,
    parent_pid: int,
    grants: Any = None,
    unrecorded: Any = None,
) -> None:
    # This process inherited its parent's heap (Django, the openai client, the run's requests: some
    # 350,000 objects). Frozen, they sit in the collector's permanent generation and a full collection
    # walks only what the batch allocates: unfrozen, one took 200 ms with 128 requests in flight, a whole
    # latency's worth of answers waiting (issue 16, measured with gc.callbacks).
    gc.freeze()
    positions = {id(request): position for position, request in enumerate(requests)}
    try:
        asyncio.run(
            complete_many(
                settings,
                requests,
                lambda request, result: arrived.put((positions[id(request)], result)),
                stop=_StopOrOrphaned(stop, parent_pid),
                permits=_permits(settings, grants) if grants is not None else None,
                unrecorded=unrecorded,
            )
        )
    except Exception:  # the batch must end; the parent sees the unsent requests as not done
        logger.exception("LLM batch process failed")
    finally:
        arrived.put(None)


def _deliver_each(on_result: Callable, pairs: list[tuple[LLMRequest, CompletionResult]]) -> bool:
    """Per-result delivery; stops at the first False (the rest of the group stays cached, undelivered)."""
    for request, result in pairs:
        if on_result(request, result) is False:
            return False
    return True


def complete(
    endpoint: Any,
    messages: list[dict],
    *,
    json_schema: dict | None = None,
    use_cache: bool = True,
    **params: Any,
) -> CompletionResult:
    """One call through the same path as batches (cache, retries, limits)."""
    results: list[CompletionResult] = []
    complete_many_sync(
        endpoint,
        [LLMRequest(key=0, messages=messages, params=params, json_schema=json_schema)],
        lambda request, result: results.append(result),
        use_cache=use_cache,
    )
    return results[0]


CONNECTION_OK = "Reachable and OpenAI-compatible"
CONNECTION_UNREACHABLE = "Not reachable. Could not connect, or no answer in time."
CONNECTION_INCOMPATIBLE = "Not an OpenAI-compatible answer (check the base URL, the model name and the key)."


def check_connection(endpoint: Any) -> tuple[bool, str]:
    """A tiny uncached call; (ok, message for the lead).

    The message is one of four kinds: reachable and OpenAI-compatible / not reachable / not an
    OpenAI-compatible answer / refused (the outbound policy or the key). Never the remote status, headers or
    body: with those, the test button would be a port scanner and a way to read other servers' answers."""
    settings = EndpointSettings.from_endpoint(endpoint, max_retries=0)
    refusal = preflight_refusal(settings, OutboundPolicy.from_settings())
    if refusal == REFUSED_PRIVATE:
        return False, f"{REFUSED_PRIVATE} {REFUSED_HINT}"
    if refusal:
        return False, refusal
    started = time.monotonic()
    result = complete(
        settings, [{"role": "user", "content": "Reply with the word OK."}], use_cache=False, max_tokens=5
    )
    seconds = time.monotonic() - started
    if result.error_kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION):
        if result.error.startswith("Refused"):  # the request hook: the host now resolves elsewhere
            return False, f"{REFUSED_PRIVATE} {REFUSED_HINT}"
        return False, CONNECTION_UNREACHABLE
    if not result.choices:  # an HTTP error, a body that is not JSON, or JSON without choices
        return False, CONNECTION_INCOMPATIBLE
    return True, f"{CONNECTION_OK}: {settings.model} at {settings.base_url} answered in {seconds:.2f} s."
