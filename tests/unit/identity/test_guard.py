"""The request guard: overrides, networks and zones, partner expiry, hours, rate limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.core.model import Subject
from gateway.errors import ClientError, Forbidden, RateLimited
from gateway.identity.errors import (
    MethodOverrideRefused,
    NetworkNotAllowed,
    OutsideWorkingHours,
    PartnerExpired,
)
from gateway.identity.guard import RequestGuard, strip_method_override_param
from gateway.settings import Settings
from gateway.state.ratelimit import MemoryRateLimiter

from .conftest import RequestFactory

SALES = Subject(id="u-sales-01", roles=("sales",), clearance="L2")
PARTNER = Subject(
    id="u-partner-01",
    roles=("partner",),
    partner=True,
    partner_expires=datetime(2027, 6, 30, 16, tzinfo=UTC),
    allowed_networks=("127.0.0.0/8",),
)
# Wednesday 2026-11-25 10:00 in Shanghai is 02:00 UTC.
WEDNESDAY_10 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def guard(clock: datetime = WEDNESDAY_10, **guard_settings: object) -> RequestGuard:
    settings = Settings.model_validate(
        {"guard": guard_settings, "forwarded": {"trusted_proxies": ["10.9.0.0/16"]}}
    )
    return RequestGuard.from_settings(settings, MemoryRateLimiter(), clock=lambda: clock)


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        ({"X-HTTP-Method-Override": "DELETE"}, "/api/customers"),
        ({"X-Method-Override": "PUT"}, "/api/customers"),
        ({"X-HTTP-Method": "DELETE"}, "/api/customers"),
        ({}, "/api/customers?_method=DELETE"),
    ],
)
async def test_method_override_is_refused(
    make_request: RequestFactory, headers: dict[str, str], path: str
) -> None:
    with pytest.raises(MethodOverrideRefused) as info:
        await guard().check(make_request(path, headers=headers), SALES, "GET /api/customers")
    assert isinstance(info.value, ClientError)
    assert info.value.status == 400


async def test_method_override_strip_mode(make_request: RequestFactory) -> None:
    result = await guard(method_override="strip").check(
        make_request("/api/customers?_method=DELETE&q=1", headers={"X-HTTP-Method": "DELETE"}),
        SALES,
        "GET /api/customers",
    )
    assert result.method_override_stripped
    assert strip_method_override_param("_method=DELETE&q=1&q=2") == "q=1&q=2"


@pytest.mark.parametrize(
    ("peer", "xff", "zone", "ip"),
    [
        ("127.0.0.1", None, "internal", "127.0.0.1"),
        ("203.0.113.5", None, "external", "203.0.113.5"),
        ("203.0.113.5", "10.1.2.3", "external", "203.0.113.5"),  # untrusted peer: XFF ignored
        ("10.9.0.1", "203.0.113.7, 10.9.0.2", "external", "203.0.113.7"),
        ("10.9.0.1", "192.168.1.20", "internal", "192.168.1.20"),
        ("10.9.0.1", "garbage", "internal", "10.9.0.1"),
    ],
)
async def test_client_address_and_zone(
    make_request: RequestFactory, peer: str, xff: str | None, zone: str, ip: str
) -> None:
    headers = {"X-Forwarded-For": xff} if xff else {}
    result = await guard().check(make_request(headers=headers, peer=peer), SALES, "r")
    assert (result.network_zone, result.client_ip) == (zone, ip)
    assert result.network_allowed


async def test_vpn_zone_from_settings(make_request: RequestFactory) -> None:
    g = guard(network_zones={"internal": ["10.0.0.0/8"], "vpn": ["100.64.0.0/10"]})
    result = await g.check(make_request(peer="100.64.3.4"), SALES, "r")
    assert result.network_zone == "vpn"


async def test_partner_networks_and_expiry(make_request: RequestFactory) -> None:
    assert (await guard().check(make_request(peer="127.0.0.1"), PARTNER, "r")).network_allowed
    with pytest.raises(NetworkNotAllowed):
        await guard().check(make_request(peer="203.0.113.9"), PARTNER, "r")
    late = datetime(2027, 6, 30, 16, 0, 1, tzinfo=UTC)
    with pytest.raises(PartnerExpired):
        await guard(clock=late).check(make_request(), PARTNER, "r")
    no_expiry = Subject(id="p", partner=True)
    with pytest.raises(PartnerExpired, match="no expiry"):
        await guard().check(make_request(), no_expiry, "r")


async def test_network_rules_per_role(make_request: RequestFactory) -> None:
    g = guard(
        network_rules=[
            {"roles": ["sales"], "allow": ["127.0.0.0/8", "192.168.0.0/16"]},
            {"subjects": ["u-sales-01"], "deny": ["192.168.66.0/24"]},
        ]
    )
    await g.check(make_request(peer="192.168.1.1"), SALES, "r")
    with pytest.raises(Forbidden, match="deny list"):
        await g.check(make_request(peer="192.168.66.6"), SALES, "r")
    with pytest.raises(Forbidden, match="allow list"):
        await g.check(make_request(peer="203.0.113.1"), SALES, "r")
    # Other roles are not bound by the sales rule.
    await g.check(make_request(peer="203.0.113.1"), Subject(id="u-x", roles=("auditor",)), "r")


async def test_report_only_networks(make_request: RequestFactory) -> None:
    g = guard(enforce_networks=False)
    result = await g.check(make_request(peer="203.0.113.9"), PARTNER, "r")
    assert not result.network_allowed


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (datetime(2026, 11, 25, 1, 0, tzinfo=UTC), True),  # Wed 09:00 Shanghai
        (datetime(2026, 11, 25, 0, 59, tzinfo=UTC), False),  # Wed 08:59
        (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), False),  # Wed 18:00 (end excluded)
        (datetime(2026, 11, 28, 2, 0, tzinfo=UTC), False),  # Saturday 10:00
    ],
)
async def test_working_hours_in_the_rule_time_zone(
    make_request: RequestFactory, when: datetime, inside: bool
) -> None:
    g = guard(
        clock=when,
        working_hours=[
            {"roles": ["sales"], "timezone": "Asia/Shanghai", "start": "09:00", "end": "18:00"}
        ],
    )
    if inside:
        await g.check(make_request(), SALES, "r")
    else:
        with pytest.raises(OutsideWorkingHours, match="09:00-18:00 Asia/Shanghai"):
            await g.check(make_request(), SALES, "r")
    # Roles without a rule are unrestricted.
    await g.check(make_request(), Subject(id="u-admin", roles=("security_admin",)), "r")


async def test_overnight_window(make_request: RequestFactory) -> None:
    rule = {
        "roles": ["sales"],
        "timezone": "UTC",
        "days": ["fri"],
        "start": "22:00",
        "end": "06:00",
    }
    friday_23 = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    saturday_05 = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
    saturday_23 = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    await guard(clock=friday_23, working_hours=[rule]).check(make_request(), SALES, "r")
    await guard(clock=saturday_05, working_hours=[rule]).check(make_request(), SALES, "r")
    with pytest.raises(OutsideWorkingHours):
        await guard(clock=saturday_23, working_hours=[rule]).check(make_request(), SALES, "r")


async def test_rate_limits_per_subject_and_route(make_request: RequestFactory) -> None:
    g = guard(
        rate_limits=[
            {
                "name": "exports",
                "per": "subject_route",
                "routes": ["GET /api/customers/export*"],
                "limit": 2,
                "period": 60,
            },
            {"name": "all", "per": "subject", "limit": 5, "period": 60, "roles": ["sales"]},
        ]
    )
    export = "GET /api/customers/export.csv"
    await g.check(make_request(), SALES, export)
    await g.check(make_request(), SALES, export)
    with pytest.raises(RateLimited) as info:
        await g.check(make_request(), SALES, export)
    assert 0 < info.value.retry_after <= 60
    # Another route is counted only by the per-subject rule (2 used of 5 so far: the
    # refused export stopped at the first rule).
    for _ in range(3):
        await g.check(make_request(), SALES, "GET /api/customers")
    with pytest.raises(RateLimited, match="'all'"):
        await g.check(make_request(), SALES, "GET /api/customers")
    # Subjects without the role are not limited by it.
    for _ in range(6):
        await g.check(make_request(), Subject(id="u-admin"), "GET /api/customers")


async def test_failed_sign_ins_are_throttled_per_client_address(
    make_request: RequestFactory,
) -> None:
    g = guard(auth_failure_limit=3, auth_failure_period=60)
    attacker, colleague = make_request(peer="203.0.113.66"), make_request(peer="203.0.113.67")
    for _ in range(3):
        await g.check_auth_allowed(attacker)
        await g.record_auth_failure(attacker)
    with pytest.raises(RateLimited, match="failed sign-ins") as info:
        await g.check_auth_allowed(attacker)
    assert 0 < info.value.retry_after <= 60
    await g.check_auth_allowed(colleague)  # another address is unaffected
    # Behind a trusted proxy the forwarded client address is what counts.
    behind = make_request(peer="10.9.0.1", headers={"X-Forwarded-For": "203.0.113.66"})
    with pytest.raises(RateLimited):
        await g.check_auth_allowed(behind)
    await guard(auth_failure_limit=0).check_auth_allowed(attacker)
