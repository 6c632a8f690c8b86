"""Who is on the other end of a request: the peer, or what a trusted proxy says it is.

Limits per address (reports from the public) are only as good as the address. A header
anyone can send (``X-Forwarded-For``, ``Forwarded``) is believed only from a proxy named
in ``BREACH_TRUSTED_PROXIES``; ``breach serve`` turns uvicorn's own handling off, which
trusts ``X-Forwarded-For`` from 127.0.0.1 by default. Through a chain of proxies the
client is the nearest address that is not a trusted proxy (read right to left): the
entries to its left were written by the client itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from breachflow.models.runtime import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClientAddress:
    """ASGI middleware: sets ``scope["client"]`` to the client a trusted proxy names."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            proxies = settings().trusted_proxies
            if proxies:
                peer = scope["client"][0]
                client = resolve(peer, _headers(scope), proxies)
                if client != peer:
                    scope["client"] = (client, 0)
        await self.app(scope, receive, send)


def resolve(peer: str, headers: dict[str, list[str]], proxies: Sequence[Network]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy that forwarded it.

    ``Forwarded`` (RFC 7239) is read when present, else ``X-Forwarded-For``. A hop that
    cannot be read ends the walk there: the answer is then that hop's text, so a garbled
    header shares one limit rather than escaping it.
    """
    if not _trusted(peer, proxies):
        return peer
    hops = _forwarded_for(headers["forwarded"]) if "forwarded" in headers else None
    if hops is None:
        hops = [h.strip() for v in headers.get("x-forwarded-for", []) for h in v.split(",")]
    client = peer
    for hop in reversed(hops):
        client = _host(hop)
        if not _trusted(client, proxies):
            break
    return client or "unknown"


def _headers(scope: Scope) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        if name in (b"forwarded", b"x-forwarded-for"):
            found.setdefault(name.decode(), []).append(value.decode("latin-1"))
    return found


def _forwarded_for(values: list[str]) -> list[str]:
    """The ``for=`` of each element of ``Forwarded: for=192.0.2.60;proto=https, for=…``."""
    hops = []
    for element in (e for value in values for e in value.split(",")):
        pairs = (p.partition("=") for p in element.split(";"))
        named = {k.strip().lower(): v.strip().strip('"') for k, _, v in pairs}
        hops.append(named.get("for", ""))
    return hops


def _host(hop: str) -> str:
    """The address in a hop, without its port: ``[2001:db8::1]:4711``, ``192.0.2.60:80``."""
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _trusted(host: str, proxies: Sequence[Network]) -> bool:
    try:
        address: Address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in proxies)
