"""The request guard: checks on the *request* before anything reaches the CRM.

In order, cheapest first: method-override smuggling, the caller's network
(directory `allowed_networks` and per-role/subject allow/deny lists), partner
expiry, working hours (per role, in the rule's time zone), and finally the
shared rate limits (the only check that costs a Redis round trip).

The network zone (internal / vpn / external) is computed here for the policy
input; the client address honours `X-Forwarded-For` only from
`forwarded.trusted_proxies`, so a client cannot pick its own zone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.core.headers import client_ip as resolve_client_ip
from gateway.core.model import Subject
from gateway.errors import RateLimited
from gateway.identity.authn.base import Clock, utcnow
from gateway.identity.errors import (
    MethodOverrideRefused,
    NetworkNotAllowed,
    OutsideWorkingHours,
    PartnerExpired,
)
from gateway.identity.upstream_headers import METHOD_OVERRIDE_HEADERS
from gateway.settings import (
    GuardSettings,
    RateLimitRuleSettings,
    Settings,
    WorkingHoursSettings,
)
from gateway.state.ratelimit import RateLimiter

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
METHOD_OVERRIDE_PARAM = "_method"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class GuardResult:
    network_zone: str
    network_allowed: bool
    client_ip: str
    method_override_stripped: bool = False


def _nets(values: tuple[str, ...]) -> tuple[Net, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _applies(roles: tuple[str, ...], subjects: tuple[str, ...], subject: Subject) -> bool:
    if not roles and not subjects:
        return True
    return subject.id in subjects or bool(set(roles) & set(subject.roles))


def strip_method_override_param(query: str) -> str:
    """The query string without `_method` (for `guard.method_override: strip`)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if k != METHOD_OVERRIDE_PARAM])


class RequestGuard:
    def __init__(
        self,
        settings: GuardSettings,
        ratelimiter: RateLimiter,
        *,
        trusted_proxies: tuple[str, ...] = (),
        clock: Clock = utcnow,
    ) -> None:
        self._s = settings
        self._limiter = ratelimiter
        self._proxies = _nets(trusted_proxies)
        self._zones = [(name, _nets(nets)) for name, nets in settings.network_zones.items()]
        self._rules = [
            (rule, _nets(rule.allow), _nets(rule.deny)) for rule in settings.network_rules
        ]
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, ratelimiter: RateLimiter, *, clock: Clock = utcnow
    ) -> RequestGuard:
        return cls(
            settings.guard,
            ratelimiter,
            trusted_proxies=settings.forwarded.trusted_proxies,
            clock=clock,
        )

    async def check(self, request: web.Request, subject: Subject, route_key: str) -> GuardResult:
        stripped = self._method_override(request)
        ip = self.client_ip(request)
        zone = self.network_zone(ip)
        refusal = self.network_refusal(subject, ip)
        if refusal and self._s.enforce_networks:
            raise NetworkNotAllowed(refusal, zone=zone)
        now = self._clock()
        self._check_partner(subject, now)
        self._check_hours(subject, now)
        await self._check_rates(subject, route_key)
        return GuardResult(zone, refusal is None, str(ip) if ip else "", stripped)

    # -- failed sign-ins ------------------------------------------------------

    async def check_auth_allowed(self, request: web.Request) -> None:
        """Before authenticating: refuse a client address with too many recent failures,
        so credentials cannot be guessed at the gateway's request rate."""
        if not self._s.auth_failure_limit:
            return
        decision = await self._limiter.peek(
            "auth-failures",
            self._client_key(request),
            limit=self._s.auth_failure_limit,
            period=self._s.auth_failure_period,
        )
        if not decision.allowed:
            raise RateLimited(
                "too many failed sign-ins from this address", retry_after=decision.retry_after
            )

    async def record_auth_failure(self, request: web.Request) -> None:
        """After `Unauthenticated`: count the failure against the client address."""
        if self._s.auth_failure_limit:
            await self._limiter.hit(
                "auth-failures",
                self._client_key(request),
                limit=self._s.auth_failure_limit,
                period=self._s.auth_failure_period,
            )

    def _client_key(self, request: web.Request) -> str:
        ip = self.client_ip(request)
        return str(ip) if ip else "unknown"

    # -- method override ------------------------------------------------------

    def _method_override(self, request: web.Request) -> bool:
        present = [h for h in METHOD_OVERRIDE_HEADERS if h in request.headers]
        if METHOD_OVERRIDE_PARAM in request.rel_url.query:
            present.append(f"?{METHOD_OVERRIDE_PARAM}=")
        if not present:
            return False
        if self._s.method_override == "reject":
            raise MethodOverrideRefused(
                f"method override is not allowed ({', '.join(present)})", found=present
            )
        return True

    # -- networks -------------------------------------------------------------

    def client_ip(self, request: web.Request) -> IP | None:
        """The client address by the gateway's one rule (`core.headers.client_ip`): the
        same address the audit event records."""
        return resolve_client_ip(
            list(request.headers.items()), peer_ip=request.remote or "", trusted=self._proxies
        )

    def network_zone(self, ip: IP | None) -> str:
        if ip is not None:
            for name, nets in self._zones:
                if any(ip in net for net in nets):
                    return name
        return "external"

    def network_refusal(self, subject: Subject, ip: IP | None) -> str | None:
        """Why `subject` may not call from `ip`, or None if it may."""
        where = str(ip) if ip else "an unknown address"
        if subject.allowed_networks and not (
            ip is not None and any(ip in net for net in _nets(subject.allowed_networks))
        ):
            return f"{subject.id} may not call from {where}"
        for rule, allow, deny in self._rules:
            if not _applies(rule.roles, rule.subjects, subject):
                continue
            if ip is None and (allow or deny):
                return f"{subject.id}: client address unknown"
            if ip is not None and any(ip in net for net in deny):
                return f"{where} is on a deny list for {subject.id}"
            if allow and not (ip is not None and any(ip in net for net in allow)):
                return f"{where} is not on an allow list for {subject.id}"
        return None

    # -- time -----------------------------------------------------------------

    @staticmethod
    def _check_partner(subject: Subject, now: datetime) -> None:
        if not subject.partner:
            return
        if subject.partner_expires is None:
            raise PartnerExpired(f"partner {subject.id} has no expiry date: access is time-limited")
        if now >= subject.partner_expires:
            raise PartnerExpired(
                f"partner access for {subject.id} expired at {subject.partner_expires.isoformat()}"
            )

    def _check_hours(self, subject: Subject, now: datetime) -> None:
        rules = [r for r in self._s.working_hours if _applies(r.roles, r.subjects, subject)]
        if not rules or any(_inside(rule, now) for rule in rules):
            return
        first = rules[0]
        raise OutsideWorkingHours(
            f"outside working hours for {subject.id} "
            f"({first.start}-{first.end} {first.timezone}, {','.join(first.days)})"
        )

    # -- rate limits ----------------------------------------------------------

    async def _check_rates(self, subject: Subject, route_key: str) -> None:
        for rule in self._s.rate_limits:
            if rule.roles and not set(rule.roles) & set(subject.roles):
                continue
            if not any(fnmatchcase(route_key, glob) for glob in rule.routes):
                continue
            decision = await self._limiter.hit(
                f"{rule.name}:{rule.per}",
                _rate_ident(rule, subject, route_key),
                limit=rule.limit,
                period=rule.period,
            )
            if not decision.allowed:
                raise RateLimited(
                    f"rate limit {rule.name!r} ({rule.limit} per {rule.period:g}s) exceeded",
                    retry_after=max(decision.retry_after, 0.001),
                )


def _rate_ident(rule: RateLimitRuleSettings, subject: Subject, route_key: str) -> str:
    if rule.per == "subject":
        return subject.id
    if rule.per == "route":
        return route_key
    return f"{subject.id}|{route_key}"


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _inside(rule: WorkingHoursSettings, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(rule.timezone))
    minute = local.hour * 60 + local.minute
    start, end = _minutes(rule.start), _minutes(rule.end)
    if start <= end:
        return _DAYS[local.weekday()] in rule.days and start <= minute < end
    # Overnight window (22:00-06:00): the late part belongs to the day it started.
    if minute >= start:
        return _DAYS[local.weekday()] in rule.days
    return minute < end and _DAYS[(local.weekday() - 1) % 7] in rule.days
