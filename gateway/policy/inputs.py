"""The normalised policy input: one object that is both the cache key and the
only source of the OPA input, so the two cannot diverge.

Everything volatile is reduced to what the policy can observe:

- the route is the template (`/api/customers/{id}`), never the raw path;
- the network is a zone plus an allowed flag, never the IP;
- time is a *piece*: the policy compares the request time with hour-of-day,
  weekday, date (holidays), and with expiry instants (partner contract, grants).
  Between two consecutive such boundaries every decision is the same, so the
  input carries the start of the current piece instead of `now`, and the cache
  entry ends at the next boundary. A partner whose contract ended at 10:30 is
  therefore evaluated at 10:30:01 (expired), not at 10:00.
- grants are the subject's active grants, projected to the fields the input
  schema names, sorted by id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

import orjson

from gateway.core.model import Subject
from gateway.state.grants import parse_instant

# (id, type, level, approved_by, expires, justification)
GrantKey = tuple[str, str, str | None, tuple[str, ...], str, str | None]


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """What the handler knows about the request, reduced to policy inputs."""

    method: str
    operation: str  # view | modify | delete | export
    route_template: str
    purpose: str | None
    justification: bool
    network_zone: str  # internal | vpn | external
    network_allowed: bool
    now: datetime  # timezone-aware
    report_only: bool = False  # the route's report-only flag


@dataclass(frozen=True, slots=True)
class NormalisedInput:
    """Hashable; equal objects give identical OPA inputs and decisions."""

    revision: str
    taxonomy_digest: str
    subject_id: str
    roles: tuple[str, ...]
    department: str
    clearance: str
    mfa: bool
    auth_method: str
    partner: bool
    partner_expires: str | None
    disabled: bool
    revoked: bool
    network_zone: str
    network_allowed: bool
    assigned_customers_only: bool
    method: str
    operation: str
    route: str
    purpose: str | None
    justification: bool
    report_only: bool
    piece_start: datetime  # in the policy's time zone
    grants: tuple[GrantKey, ...]

    def digest(self) -> str:
        """A short stable digest for audit events and logs."""
        return hashlib.sha256(orjson.dumps(self._canonical())).hexdigest()[:16]

    def _canonical(self) -> list[Any]:
        return [
            self.revision,
            self.taxonomy_digest,
            *(getattr(self, f) for f in _SCALARS),
            self.piece_start.isoformat(),
            [list(g) for g in self.grants],
        ]


_SCALARS = (
    "subject_id", "roles", "department", "clearance", "mfa", "auth_method", "partner",
    "partner_expires", "disabled", "revoked", "network_zone", "network_allowed",
    "assigned_customers_only", "method", "operation", "route", "purpose", "justification",
    "report_only",
)  # fmt: skip


def time_piece(
    now: datetime, boundaries: Iterable[datetime], tz: tzinfo
) -> tuple[datetime, datetime]:
    """(start, end) of the piece of time containing `now`, in `tz`.

    Pieces are cut at every whole hour (hour, weekday and date rules) and at every
    given instant. A boundary already passed is represented one second after it,
    so a policy comparing `time < expires` sees it as passed.
    """
    local = now.astimezone(tz)
    hour_start = local.replace(minute=0, second=0, microsecond=0)
    start, end = hour_start, hour_start + timedelta(hours=1)
    for b in boundaries:
        if hour_start < b <= local:
            passed = b.astimezone(tz).replace(microsecond=0) + timedelta(seconds=1)
            start = max(start, passed)
        elif local < b < end:
            end = b.astimezone(tz)
    return start, end


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _grant_key(g: Mapping[str, Any]) -> GrantKey:
    approved = g.get("approved_by") or ()
    return (
        str(g.get("id", "")),
        str(g.get("type", "")),
        _opt(g.get("level")),
        tuple(sorted(str(a) for a in approved)),
        str(g.get("expires", "")),
        _opt(g.get("justification")),
    )


def _grant_input(g: GrantKey) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": g[0],
        "type": g[1],
        "approved_by": list(g[3]),
        "expires": g[4],
        "justification": g[5],
    }
    if g[2] is not None:
        out["level"] = g[2]
    return out


def normalise(
    subject: Subject,
    request: PolicyRequest,
    *,
    revision: str,
    taxonomy_digest: str,
    grants: Iterable[Mapping[str, Any]],
    tz: tzinfo,
    report_only: bool,
    revoked: bool = False,
) -> tuple[NormalisedInput, datetime]:
    """The normalised input and the instant after which it no longer holds."""
    grant_keys = tuple(sorted((_grant_key(g) for g in grants), key=lambda k: (k[0], repr(k))))
    partner_expires = (
        subject.partner_expires.isoformat() if subject.partner_expires is not None else None
    )
    boundaries = [b for b in (parse_instant(g[4]) for g in grant_keys) if b is not None]
    if subject.partner_expires is not None and subject.partner_expires.tzinfo is not None:
        boundaries.append(subject.partner_expires)
    start, end = time_piece(request.now, boundaries, tz)
    attrs = subject.attributes
    norm = NormalisedInput(
        revision=revision,
        taxonomy_digest=taxonomy_digest,
        subject_id=subject.id,
        roles=tuple(sorted(set(subject.roles))),
        department=subject.department,
        clearance=subject.clearance,
        mfa=subject.mfa,
        auth_method=subject.auth_method,
        partner=subject.partner,
        partner_expires=partner_expires,
        disabled=subject.disabled,
        revoked=revoked or bool(attrs.get("revoked", False)),
        network_zone=request.network_zone,
        network_allowed=request.network_allowed,
        assigned_customers_only=bool(attrs.get("assigned_customers_only", False)),
        method=request.method.upper(),
        operation=request.operation,
        route=request.route_template,
        purpose=request.purpose or None,
        justification=request.justification,
        report_only=report_only,
        piece_start=start,
        grants=grant_keys,
    )
    return norm, end


def subject_input(norm: NormalisedInput) -> dict[str, Any]:
    """The input's `subject` (the OPA input and the decision-input log share it)."""
    return {
        "id": norm.subject_id,
        "roles": list(norm.roles),
        "department": norm.department,
        "clearance": norm.clearance,
        "mfa": norm.mfa,
        "auth_method": norm.auth_method,
        "partner": norm.partner,
        "partner_expires": norm.partner_expires,
        "disabled": norm.disabled,
        "revoked": norm.revoked,
        "network_zone": norm.network_zone,
        "network_allowed": norm.network_allowed,
        "assigned_customers_only": norm.assigned_customers_only,
    }


def build_opa_input(norm: NormalisedInput, taxonomy: Mapping[str, Any]) -> dict[str, Any]:
    """The OPA input document, built only from the normalised object."""
    t = norm.piece_start
    return {
        "subject": subject_input(norm),
        "request": {
            "method": norm.method,
            "operation": norm.operation,
            "route": norm.route,
            "purpose": norm.purpose,
            "justification": norm.justification,
            "time": {
                "weekday": t.isoweekday(),
                "hour": t.hour,
                "date": t.date().isoformat(),
                "rfc3339": t.isoformat(),
            },
            "report_only": norm.report_only,
        },
        "taxonomy": taxonomy,
        "grants": [_grant_input(g) for g in norm.grants],
    }


def taxonomy_digest(taxonomy: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(taxonomy, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
