"""One RPM/TPM budget per endpoint, shared by every worker that sends to it: the shards of a sharded run,
and different runs (or labelling batches) on the same endpoint at once.

How it works: a process that sends takes *blocks* of permits (about one second's worth of requests, and
tokens to match) from a row per endpoint (``EndpointRateLimit``), and hands them to its sender; the sender
spends them one request at a time. The row holds every block taken in the last ``window + hold`` seconds;
a block is granted only while those blocks plus it stay within the limit. A permit not spent within
``hold`` seconds of its block being taken is dropped. So the requests sent in any window of ``window``
seconds (60: "per minute") used permits taken in the ``window + hold`` seconds before its end, which is
never more than the limit: the guarantee holds for every sliding minute, for any number of workers and
machines, not only for the fixed minutes a counter would reset on. The cost is a little throughput: at
full speed ``window / (window + hold)`` of the limit (95 % with the defaults).

Why in the database rather than Redis: the database is the one store every setup has (``make start`` runs
SQLite and a broker without a server; production runs PostgreSQL with Redis or RabbitMQ or neither), and
with blocks of about a second's worth a sender touches the row about once a second, which either database
does easily. Updates are a compare-and-set on ``version`` (a conditional UPDATE), safe on both without
row locks. Clock: each process's wall clock (``time.time``); machines that send to one endpoint should
keep their clocks in sync (NTP), as a skewed clock shifts where its blocks fall in the window.

TPM is counted on the estimated tokens of the requests (``generation.llm.client.estimate_tokens``), as the
per-process limiter did. A single request estimated above the whole TPM limit goes alone, when the window
is empty (else it could never go).

Why hand-written: the rate-limit libraries (aiolimiter, limits, pyrate-limiter) keep their state in the
process or in Redis; none offers a compare-and-set store over the Django database that SQLite and
PostgreSQL both serve.

The core (``take_block``) is plain Python; ``SharedRateLimit`` stores it; ``Permits`` is the sender's
side (no database: the sender may run in a forked child process)."""

from __future__ import annotations

import asyncio
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 60.0
HOLD_SECONDS = 3.0
CAS_ATTEMPTS = 20

Block = list[float]  # [taken at, requests, tokens]


@dataclass(frozen=True)
class Grant:
    taken_at: float
    requests: int
    tokens: int


@dataclass(frozen=True)
class Limits:
    rpm: int = 0
    tpm: int = 0
    window: float = field(default_factory=lambda: WINDOW_SECONDS)
    hold: float = field(default_factory=lambda: HOLD_SECONDS)

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)


def block_size(limits: Limits, tokens_per_request: int) -> tuple[int, int]:
    """(requests, tokens) of one block: about a second's worth of requests (at least 1), and tokens enough
    for that many of the largest request (at least one largest request)."""
    tokens_per_request = max(1, tokens_per_request)
    per_second = []
    if limits.rpm:
        per_second.append(limits.rpm / limits.window)
    if limits.tpm:
        per_second.append(limits.tpm / limits.window / tokens_per_request)
    requests = max(1, int(min(per_second))) if per_second else 1
    return requests, requests * tokens_per_request


def take_block(
    blocks: list[Block], now: float, limits: Limits, requests: int, tokens: int
) -> tuple[list[Block], Grant | None, float]:
    """(the blocks kept, the grant or None, seconds to wait before asking again when None).

    Grants up to `requests` requests (fewer if only fewer are left, at least 1) with `tokens` tokens, so
    that every block taken within ``window + hold`` seconds adds up to at most the limits."""
    span = limits.window + limits.hold
    kept = [block for block in blocks if block[0] > now - span]
    used_requests = sum(block[1] for block in kept)
    used_tokens = sum(block[2] for block in kept)
    grant_requests = requests
    if limits.rpm:
        grant_requests = min(requests, int(limits.rpm - used_requests))
    tokens_fit = not limits.tpm or used_tokens + tokens <= limits.tpm or not used_tokens
    if grant_requests < 1 or not tokens_fit:
        oldest = min((block[0] for block in kept), default=now)
        return kept, None, max(0.01, oldest + span - now)
    if limits.tpm and grant_requests < requests:
        tokens = max(1, tokens * grant_requests // requests)
    grant = Grant(taken_at=now, requests=grant_requests, tokens=tokens)
    return [*kept, [now, grant_requests, tokens]], grant, 0.0


class SharedRateLimit:
    """The endpoint's row, taken from by compare-and-set. One per batch of calls (not thread-safe). Take
    outside long transactions: on PostgreSQL an updated row stays locked until its transaction ends, and
    every other worker's take waits for that (``complete_many_sync`` takes between its batch writes)."""

    def __init__(
        self,
        endpoint_id: int,
        limits: Limits,
        tokens_per_request: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint_id, self.limits, self.clock = endpoint_id, limits, clock
        self.requests, self.tokens = block_size(limits, tokens_per_request)
        self.next_try = 0.0

    def take(self) -> Grant | None:
        """A block of permits, or None when the budget is spent (then not asked again before some of it
        frees up: `next_try`)."""
        from django.db import IntegrityError, transaction

        from generation.models import EndpointRateLimit

        now = self.clock()
        if now < self.next_try:
            return None
        for _ in range(CAS_ATTEMPTS):
            row = (
                EndpointRateLimit.objects.filter(pk=self.endpoint_id).values_list("blocks", "version").first()
            )
            if row is None:
                try:
                    with transaction.atomic():
                        EndpointRateLimit.objects.create(endpoint_id=self.endpoint_id)
                except IntegrityError:
                    pass  # another worker created it first
                continue
            blocks, version = row
            kept, grant, wait = take_block(blocks, now, self.limits, self.requests, self.tokens)
            if grant is None:
                self.next_try = now + min(wait, 1.0)
                if kept != blocks:  # forget expired blocks (best effort: a conflict just skips it)
                    EndpointRateLimit.objects.filter(pk=self.endpoint_id, version=version).update(
                        blocks=kept, version=version + 1
                    )
                return None
            if EndpointRateLimit.objects.filter(pk=self.endpoint_id, version=version).update(
                blocks=kept, version=version + 1
            ):
                return grant
            now = self.clock()  # another worker took a block in between: read again
        return None


class Permits:
    """The sender's side: spends granted blocks one request at a time; permits of a block not spent within
    ``hold`` seconds are dropped (the guarantee above needs it). Tokens were reserved when the block was
    taken (as many requests of the batch's largest estimate), so only requests are counted here.

    `grants` is a queue the taking process fills (``queue.Queue`` for a sender thread,
    ``multiprocessing.Queue`` for a sender process); ``acquire`` waits for one when the permits in hand
    run out. `clock` must agree with the taking process's clock (``time.time``: also in a forked child)."""

    POLL_SECONDS = 0.005

    def __init__(self, grants: Any, limits: Limits, *, clock: Callable[[], float] = time.time) -> None:
        self.grants, self.limits, self.clock = grants, limits, clock
        self.hand: deque[list[float]] = deque()  # [taken at, requests left]

    def try_spend(self) -> bool:
        now = self.clock()
        while self.hand and self.hand[0][0] + self.limits.hold <= now:
            self.hand.popleft()
        while not self.hand:
            try:
                grant = self.grants.get_nowait()
            except queue.Empty:
                return False
            if grant.taken_at + self.limits.hold > now:
                self.hand.append([grant.taken_at, grant.requests])
        self.hand[0][1] -= 1
        if self.hand[0][1] < 1:
            self.hand.popleft()
        return True

    async def acquire(self, tokens: int = 0) -> None:  # noqa: ARG002 - the RateLimiter interface
        while not self.try_spend():
            await asyncio.sleep(self.POLL_SECONDS)
