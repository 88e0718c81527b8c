"""Where LLM requests may go: no loopback, private, link-local, multicast, reserved or unspecified address
unless the operator allowed it.

Why: a lead chooses an endpoint's base URL, and the server then connects there (with the endpoint's key). A
URL on 127.0.0.1, 10.x or 169.254.169.254 would make the server probe or call its own network for the lead.

The policy (``OutboundPolicy.from_settings()``):

- the *resolved* addresses of the host are checked (getaddrinfo), all of them: a name that resolves to a
  public and a private address is refused;
- ``LLM_ALLOW_PRIVATE_HOSTS`` allows loopback and private (RFC 1918, unique-local) addresses, for a local
  vLLM / llama.cpp / Ollama; link-local, multicast, reserved and unspecified ones stay refused (cloud
  metadata services live on link-local);
- ``LLM_ALLOWED_HOSTS`` entries are always allowed: a hostname (exact, case-insensitive), an IP or a CIDR;
- the origin (scheme, host, port) of ``LLM_BASE_URL`` is allowed: the operator configured it.

It is applied when an endpoint is saved (form error), before every batch of calls, and on every HTTP request
the client sends (``OutboundGuard``, an httpx request hook). The hook also pins the connection to the address
it checked, so a DNS answer that changes between the check and the connect (DNS rebinding) cannot move the
request to a refused address. Redirects are not followed at all (see ``generation.llm.client._make_client``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

REFUSED_PRIVATE = "Refused: private address."
REFUSED_HINT = "An operator can allow it with LLM_ALLOW_PRIVATE_HOSTS or LLM_ALLOWED_HOSTS."
SCHEMES = {"http": 80, "https": 443}


class RefusedDestination(Exception):
    """Raised by the request hook; the LLM client reports it as a refused connection, never retried."""


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IP literals resolve to themselves). Raises OSError."""
    return list(dict.fromkeys(info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def address_kind(address: IPAddress) -> str:
    """'' for a public address, else why it is not: 'private' (loopback or private range) or 'special'
    (link-local, multicast, reserved, unspecified and the other non-global ranges)."""
    if address.is_loopback:
        return "private"  # before is_reserved: ::1 lies in the reserved ::/8
    if address.is_unspecified or address.is_link_local or address.is_multicast or address.is_reserved:
        return "special"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "special"  # shared address space 100.64/10, documentation ranges, …
    return ""


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    trusted_origins: frozenset[tuple[str, str, int]] = frozenset()

    @classmethod
    def from_settings(cls) -> OutboundPolicy:
        from django.conf import settings

        names, networks = set(), []
        for entry in settings.LLM_ALLOWED_HOSTS:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))  # not an IP or CIDR: a hostname
        origin = url_origin(settings.LLM_BASE_URL) if settings.LLM_BASE_URL else None
        return cls(
            allow_private=settings.LLM_ALLOW_PRIVATE_HOSTS,
            allowed_names=frozenset(names),
            allowed_networks=tuple(networks),
            trusted_origins=frozenset({origin} if origin else ()),
        )

    def address_allowed(self, address: IPAddress) -> bool:
        kind = address_kind(address)
        if not kind or any(address in network for network in self.allowed_networks):
            return True
        return kind == "private" and self.allow_private

    def host_trusted(self, scheme: str, host: str, port: int) -> bool:
        """Allowed without looking at addresses: an operator-named host, or LLM_BASE_URL's origin."""
        host = host.lower().rstrip(".")
        return host in self.allowed_names or (scheme, host, port) in self.trusted_origins

    def check(self, url: str, *, resolver: Resolver = resolve) -> tuple[str, str | None]:
        """(refusal, pinned address): refusal is '' when `url` may be called; the address is the one to
        connect to (None for a trusted host: connect as usual)."""
        origin = url_origin(url)
        if origin is None:
            return "Refused: only http:// and https:// URLs with a host.", None
        scheme, host, port = origin
        if self.host_trusted(scheme, host, port):
            return "", None
        try:
            addresses = [_address(text) for text in resolver(host, port)]
        except (OSError, UnicodeError, ValueError):
            return f"Not reachable: the host {host} does not resolve.", None
        if not addresses:
            return f"Not reachable: the host {host} does not resolve.", None
        if not all(self.address_allowed(address) for address in addresses):
            return REFUSED_PRIVATE, None
        return "", str(addresses[0])


def url_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, lower-case host without brackets, port) of an http(s) URL; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").rstrip("."), parts.port
    except ValueError:
        return None
    if scheme not in SCHEMES or not host:
        return None
    return scheme, host, port or SCHEMES[scheme]


def refusal_for(url: str, *, resolver: Resolver = resolve) -> str:
    """'' when the policy in the settings allows `url`, else why not (no remote detail)."""
    return OutboundPolicy.from_settings().check(url, resolver=resolver)[0]


class OutboundGuard:
    """An httpx ``request`` event hook: runs before every request the client sends (redirects included, were
    they followed), refuses a destination the policy refuses, and pins the request to the checked address.

    One guard lives as long as one client (one batch of calls): each host is resolved and checked once, and
    every later request of the batch goes to that same address.

    Why the routes are remembered per URL: a batch sends thousands of requests to one URL, and parsing it
    again (our origin, then httpx's ``copy_with`` re-parse of the rewritten URL) cost more CPU per request
    than the rest of the hook (issue 16). httpx URLs are immutable, so the rewritten one is shared."""

    ROUTES_KEPT = 64  # distinct URLs remembered (one batch uses one or two)

    def __init__(self, policy: OutboundPolicy, *, resolver: Resolver = resolve) -> None:
        self.policy = policy
        self.resolver = resolver
        self.pinned: dict[tuple[str, str, int], str | None] = {}
        # URL text → (the URL to send to, or None to send as is; the TLS server name, or None)
        self.routes: dict[str, tuple[Any, str | None]] = {}

    def destination(self, url: str) -> str | None:
        """The address to connect to for `url` (None: as the URL says); raises RefusedDestination."""
        origin = url_origin(url)
        if origin is not None and origin in self.pinned:
            return self.pinned[origin]
        refusal, address = self.policy.check(url, resolver=self.resolver)
        if refusal:
            raise RefusedDestination(refusal)
        assert origin is not None  # check() refuses URLs without one
        self.pinned[origin] = address
        return address

    async def __call__(self, request: Any) -> None:
        import asyncio

        url = str(request.url)
        route = self.routes.get(url)
        if route is None:
            origin = url_origin(url)
            if origin is not None and origin in self.pinned:
                address = self.pinned[origin]
            else:
                address = await asyncio.to_thread(self.destination, url)  # getaddrinfo blocks
            assert origin is not None  # destination() refuses URLs without one
            if address is None or _address_text(origin[1]) == address:
                route = (None, None)  # a trusted host, or the URL names the checked address already
            else:
                # Connect to the checked address; the Host header (set when the request was built) and the
                # TLS server name stay the host's, so virtual hosting and certificate checks work as before.
                route = (request.url.copy_with(host=address), origin[1] if origin[0] == "https" else None)
            if len(self.routes) < self.ROUTES_KEPT:
                self.routes[url] = route
        target, server_name = route
        if target is not None:
            request.url = target
        if server_name is not None:
            request.extensions = {**request.extensions, "sni_hostname": server_name}


def _address_text(host: str) -> str | None:
    """The canonical text of an IP literal host (None for a name)."""
    try:
        return str(_address(host))
    except ValueError:
        return None
