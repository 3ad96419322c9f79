"""Settings of the request guard (networks, hours, rate limits) and monitoring."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from gateway.settings.base import Section as _Section
from gateway.settings.base import check_networks as _check_networks
from gateway.settings.base import check_zone

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_DAY = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class NetworkRuleSettings(_Section):
    """IP allow/deny lists for some roles or subjects (empty roles and subjects: everyone)."""

    roles: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(v)


class WorkingHoursSettings(_Section):
    """A window in which the listed roles/subjects may call (a subject matched by several
    rules may call inside any of them)."""

    roles: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    timezone: str = "Asia/Shanghai"
    days: tuple[_DAY, ...] = ("mon", "tue", "wed", "thu", "fri")
    start: str = "08:00"
    end: str = "20:00"

    _zone = field_validator("timezone")(check_zone)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        h, sep, m = v.partition(":")
        if not (sep and h.isdigit() and m.isdigit() and int(h) <= 24 and int(m) < 60):
            raise ValueError(f"{v!r} is not HH:MM")
        return v


class RateLimitRuleSettings(_Section):
    """`limit` requests per `period` seconds, counted per subject, per route or both,
    shared by every replica through Redis. `routes` are globs on the route key."""

    name: str
    per: Literal["subject", "route", "subject_route"] = "subject"
    routes: tuple[str, ...] = ("*",)
    roles: tuple[str, ...] = ()
    limit: int = Field(ge=1)
    period: float = Field(gt=0)


class GuardSettings(_Section):
    """Request-side checks before anything reaches the CRM."""

    # X-HTTP-Method-Override and friends: refuse (400) or strip before forwarding.
    method_override: Literal["reject", "strip"] = "reject"
    # Network zones for the policy input, first match wins; anything else is "external".
    network_zones: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "internal": ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
            "vpn": (),
        }
    )
    network_rules: tuple[NetworkRuleSettings, ...] = ()
    # false: network violations are reported to the policy (network_allowed) but not refused.
    enforce_networks: bool = True
    working_hours: tuple[WorkingHoursSettings, ...] = ()
    rate_limits: tuple[RateLimitRuleSettings, ...] = ()
    # The CRM treats paths case-insensitively: normalise to lower case before routing
    # (and forward lower case). Sensitive rules and catalog routes match any case anyway.
    case_insensitive_paths: bool = False
    # Path parameters (`/api/customers;jsessionid=1/X`, `%3B`): reject (400 bad_path),
    # or strip them for matching (forwarded as sent) for old Java CRMs that need them.
    matrix_params: Literal["reject", "strip"] = "reject"
    # Methods refused with 405 before anything else (TRACE reflects headers, CONNECT tunnels).
    refused_methods: tuple[str, ...] = ("TRACE", "TRACK", "CONNECT")
    # Client headers whose names hold anything but letters, digits and `-`
    # (`X_Remote_User`, `X.Remote.User`): drop (as nginx does) or pass. Twins of
    # headers the gateway strips or sets are removed in every case.
    underscore_headers: Literal["drop", "pass"] = "drop"
    # Such names still passed when dropping (lower case), e.g. `x_legacy_token`.
    underscore_headers_allow: tuple[str, ...] = ()
    # Failed sign-ins per client address before further attempts are refused (429)
    # for the rest of the window; 0: no limit. Shared by replicas through Redis.
    auth_failure_limit: int = Field(default=50, ge=0)
    auth_failure_period: float = Field(default=300.0, gt=0)

    @field_validator("refused_methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [m for m in v if not _TOKEN.fullmatch(m)]
        if bad:
            raise ValueError(f"{bad} are not HTTP method names")
        return tuple(m.upper() for m in v)

    @field_validator("underscore_headers_allow")
    @classmethod
    def _header_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in v if not _TOKEN.fullmatch(n)]
        if bad:
            raise ValueError(f"{bad} are not header names")
        return tuple(n.lower() for n in v)

    @field_validator("network_zones")
    @classmethod
    def _zones(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for nets in v.values():
            _check_networks(nets)
        return v


class MonitorSettings(_Section):
    """Real-time anomaly detection shared by every replica through Redis, and honeytokens.

    Windows are fixed buckets (`window_seconds`, `blocked_burst_seconds`); each alert
    kind fires at most once per subject per bucket, whichever replica sees the breach.
    `action` applies to the distinct-customer and blocked-burst alerts; access outside
    usual hours only alerts (one call at night is a question, not proof).
    """

    # On by default: alerts only (`action: alert`) until the security team picks an action.
    enabled: bool = True
    window_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    # Level -> distinct customers seen in clear by one subject in a window that raise an alert.
    distinct_customers: dict[str, int] = Field(
        default_factory=lambda: {"L2": 500, "L3": 200, "L4": 50}
    )
    blocked_burst_count: int = Field(default=20, ge=1)
    blocked_burst_seconds: int = Field(default=60, ge=1, le=86400)
    # Distinct protected values one subject filters/searches by (refused or looked up) in a
    # window that raise a `filter_probe` alert (search oracles, gateway.core.query_guard).
    filter_probes: int = Field(default=20, ge=1)
    # Usual hours [start, end) on `usual_days` in `timezone`; start > end wraps past midnight.
    # 0-24 on every day turns the off-hours alert off.
    usual_hours_start: int = Field(default=0, ge=0, le=23)
    usual_hours_end: int = Field(default=24, ge=1, le=24)
    usual_days: tuple[_DAY, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    timezone: str = "Asia/Shanghai"
    action: Literal["alert", "throttle", "revoke"] = "alert"
    throttle_seconds: int = Field(default=900, ge=1)
    # Decoy customer record ids no legitimate task touches; any access alerts at once.
    honeytokens: tuple[str, ...] = ()
    honeytoken_action: Literal["alert", "revoke"] = "alert"
    # Detector plumbing: bounded queue, batch size, seconds between throttle refreshes.
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=500, ge=1)
    refresh_seconds: float = Field(default=1.0, gt=0)

    @field_validator("distinct_customers")
    @classmethod
    def _levels(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [k for k, n in v.items() if not (k[:1] == "L" and k[1:].isdigit()) or n < 1]
        if bad:
            raise ValueError(f"levels must look like L3 with a threshold >= 1, not {bad}")
        return v

    _zone = field_validator("timezone")(check_zone)
