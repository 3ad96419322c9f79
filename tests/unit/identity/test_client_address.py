"""One client address: the IP the audit event records is the IP that network zones,
network rules and the sign-in rate limit use, for every shape of X-Forwarded-For."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from gateway.core import headers as h
from gateway.core.model import Subject
from gateway.identity.guard import RequestGuard
from gateway.settings import Settings
from gateway.state.ratelimit import MemoryRateLimiter

from .conftest import PeerTransport

TRUSTED = ["10.0.0.0/8", "fd00::/8"]
ZONES = {"internal": ["10.0.0.0/8", "fd00::/8"], "branch": ["198.51.100.0/24", "2001:db8::/32"]}
ANYONE = Subject(id="u-1", roles=("sales",), clearance="L2")

CASES = [
    # (peer, X-Forwarded-For header values, expected client, expected zone)
    pytest.param("10.0.0.1", ["198.51.100.7, garbage"], "10.0.0.1", "internal", id="garbled-last"),
    pytest.param(
        "10.0.0.1", ["198.51.100.7, not-an-ip, 10.0.0.2"], "10.0.0.1", "internal", id="garbled-mid"
    ),
    pytest.param("10.0.0.1", ["198.51.100.7:443"], "10.0.0.1", "internal", id="hop-with-port"),
    pytest.param("203.0.113.5", ["10.1.2.3"], "203.0.113.5", "external", id="spoofed-untrusted"),
    pytest.param(
        "10.0.0.1", ["10.6.6.6, 198.51.100.4"], "198.51.100.4", "branch", id="spoofed-leftmost"
    ),
    pytest.param("fd00::1", ["2001:db8::7"], "2001:db8::7", "branch", id="ipv6"),
    pytest.param("2001:db8::9", ["10.0.0.7"], "2001:db8::9", "branch", id="ipv6-untrusted-peer"),
    pytest.param("::ffff:10.0.0.1", ["198.51.100.8"], "198.51.100.8", "branch", id="ipv4-mapped"),
    pytest.param(
        "10.0.0.1",
        ["203.0.113.7, 10.0.0.3, 10.0.0.2"],
        "203.0.113.7",
        "external",
        id="multi-hop",
    ),
    pytest.param(
        "10.0.0.1", ["203.0.113.7", "10.0.0.3"], "203.0.113.7", "external", id="two-headers"
    ),
    pytest.param("10.0.0.1", ["10.0.0.3"], "10.0.0.3", "internal", id="all-trusted"),
    pytest.param("10.0.0.1", [], "10.0.0.1", "internal", id="trusted-peer-no-header"),
    pytest.param("203.0.113.5", ["garbage"], "203.0.113.5", "external", id="untrusted-garbled"),
]


def _request(peer: str, xff: list[str]) -> web.Request:
    headers = CIMultiDict([("X-Forwarded-For", v) for v in xff])
    return make_mocked_request(
        "GET", "/api/customers", headers=headers, transport=PeerTransport(peer)
    )


def _guard(limiter: MemoryRateLimiter) -> RequestGuard:
    settings = Settings.model_validate(
        {
            "guard": {"network_zones": ZONES, "auth_failure_limit": 1},
            "forwarded": {"trusted_proxies": TRUSTED},
        }
    )
    return RequestGuard.from_settings(settings, limiter)


def _audited_ip(request: web.Request) -> str:
    """What the handler puts in the access record (`Access.client_ip`)."""
    return h.resolve_client(
        list(request.headers.items()),
        peer_ip=request.remote or "",
        scheme=request.scheme,
        host=request.host,
        trusted=h.parse_networks(TRUSTED),
    ).ip


@pytest.mark.parametrize(("peer", "xff", "client", "zone"), CASES)
async def test_audited_ip_is_the_guards_ip(
    peer: str, xff: list[str], client: str, zone: str
) -> None:
    limiter = MemoryRateLimiter()
    guard = _guard(limiter)
    request = _request(peer, xff)

    audited = _audited_ip(request)
    result = await guard.check(request, ANYONE, "GET /api/customers")

    assert audited == client
    assert result.client_ip == audited  # network zones and rules
    assert result.network_zone == zone
    await guard.record_auth_failure(request)  # the sign-in limit is keyed by the same address
    counted = await limiter.peek("auth-failures", audited, limit=1, period=60.0)
    assert not counted.allowed


def test_unix_socket_peer_has_no_address() -> None:
    assert h.client_ip([("X-Forwarded-For", "198.51.100.7")], peer_ip="", trusted=()) is None
