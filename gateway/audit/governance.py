"""Governance events: every change of who may see what, in the same audit chain.

An access request, each approval or refusal, a grant's activation, revocation,
consumption or expiry, a break-glass, its review, a lockdown switched on or
off, a subject revoked or restored: each is one event, emitted through the same
`AuditEmitter.emit` as access events, so it is HMAC-chained, sealed, verified by
`crm-gateway audit verify` and shipped to the SIEM like them.

Shape: OCSF 1.8 User Access Management (3005; activity 1 Assign Privileges,
2 Revoke Privileges, 99 Other) with the gateway's detail under
`unmapped.governance`: the action, the authenticated actor (id, department,
console roles, and `via` api|cli with the OS user for the CLI), the target
subject, the request/grant ids, the chain step and the reason given. Reasons
are free text typed by staff: they are length-capped and scrubbed of
identifier-shaped digit runs like every other string in the trail.

A reveal with reason (查看明文) is `field_revealed` (who, the record id, the field,
its category and level, the read route, the policy revision, the reason; never
the value), a refused one `reveal_refused` with the refusal's code.

Alerts that must reach the SIEM at once (break-glass opened, a review overdue,
lockdown switched, a reveal limit reached) are Detection Findings (2004), like
the anomaly detector's.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.audit.alerts import detection_finding
from gateway.audit.event import OCSF_VERSION, PRODUCT
from gateway.audit.values import rfc3339, text, tokens, uuid7

CLASS_UID = 3005
CATEGORY_UID = 3

_ASSIGN = frozenset(
    {"grant_activated", "break_glass_opened", "clearance_applied", "account_created"}
)
_REVOKE = frozenset(
    {"grant_revoked", "grant_consumed", "grant_expired", "subject_revoked", "lockdown_on"}
)
_HIGH = frozenset(
    {"break_glass_opened", "lockdown_on", "lockdown_off", "subject_revoked", "state_restored"}
)

_MEDIUM = frozenset({"field_revealed", "reveal_refused"})

AlertKind = Literal["break_glass", "review_overdue", "lockdown", "reveal_rate_limit"]
_ALERT_TITLES = {
    "break_glass": "Break-glass access opened",
    "review_overdue": "Break-glass review overdue",
    "lockdown": "Lockdown switched",
    "reveal_rate_limit": "Reveal limit reached",
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, as authenticated (never as typed)."""

    id: str
    department: str = ""
    roles: tuple[str, ...] = ()
    via: str = "api"  # api | cli | gateway (the gateway itself: expiry, consumption)
    os_user: str | None = None
    ip: str | None = None


SYSTEM = Actor(id="crm-gateway", via="gateway")


def os_user() -> str:
    """The operating-system user running a command (the CLI's authenticated actor)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # e.g. request_created, request_approved, grant_revoked, lockdown_on
    actor: Actor
    subject: str | None = None  # whose access changes
    request_id: str | None = None
    grant_id: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def _activity(action: str) -> tuple[int, str]:
    if action in _ASSIGN:
        return 1, "Assign Privileges"
    if action in _REVOKE:
        return 2, "Revoke Privileges"
    return 99, "Other"


def _details(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars and lists of scalars only, each scrubbed (no nested free-form)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = text(str(key), 64) or ""
        if isinstance(value, bool) or value is None or isinstance(value, int | float):
            out[name] = value
        elif isinstance(value, str):
            out[name] = text(value)
        elif isinstance(value, Sequence):
            out[name] = [text(v, 128) for v in value][:50]
    return out


def _actor(actor: Actor) -> dict[str, Any]:
    return {
        "user": {
            "uid": text(actor.id, 128),
            "groups": [{"name": r} for r in tokens(list(actor.roles))],
            "org": {"name": text(actor.department, 128)},
        },
        "app_name": f"crm-gateway {actor.via}",
    }


def _privileges(change: Change) -> list[str]:
    named = [
        f"{kind}:{text(value, 64)}"
        for kind, value in (("grant", change.grant_id), ("request", change.request_id))
        if value
    ]
    return named or [text(change.action, 64) or "governance"]


def build_governance_event(change: Change, now: float | None = None) -> dict[str, Any]:
    """The canonical event for one governance action (no integrity block: the chain adds it)."""
    at = time.time() if now is None else now
    activity_id, activity_name = _activity(change.action)
    actor = change.actor
    return {
        "class_uid": CLASS_UID,
        "class_name": "User Access Management",
        "category_uid": CATEGORY_UID,
        "category_name": "Identity & Access Management",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "severity_id": 4 if change.action in _HIGH else 3 if change.action in _MEDIUM else 1,
        "time": int(at * 1000),
        "time_dt": rfc3339(at),
        "status_id": 1,
        "message": f"governance {change.action}",
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": uuid7(),
            "correlation_uid": text(change.request_id or change.grant_id, 64),
            "log_name": "crm-governance",
            "profiles": ["datetime"],
        },
        "actor": _actor(actor),
        "src_endpoint": {"ip": text(actor.ip, 64)},
        "user": {"uid": text(change.subject, 128)},
        # OCSF requires the privileges assigned or revoked: the grant or request concerned
        "privileges": _privileges(change),
        "unmapped": {
            "governance": {
                "action": text(change.action, 64),
                "actor": text(actor.id, 128),
                "actor_department": text(actor.department, 128),
                "via": text(actor.via, 16),
                "os_user": text(actor.os_user, 64),
                "subject": text(change.subject, 128),
                "request_id": text(change.request_id, 64),
                "grant_id": text(change.grant_id, 64),
                "reason": text(change.reason, 512),
                "details": _details(change.details),
            }
        },
    }


def build_governance_alert(
    kind: AlertKind,
    *,
    subject: str | None,
    message: str,
    uid: str,
    actor: Actor = SYSTEM,
    now: float | None = None,
) -> dict[str, Any]:
    """A critical Detection Finding for the SIEM (break-glass, overdue review, lockdown)."""
    return {
        **detection_finding(
            at=time.time() if now is None else now,
            severity_id=5,
            message=text(message, 512),
            action_id=3,  # Observed
            disposition_id=19,  # Alert
            uid=uid,
            title=_ALERT_TITLES[kind],
            kind=kind,
        ),
        "actor": _actor(actor),
        "unmapped": {"governance": {"alert": kind, "subject": text(subject, 128)}},
    }
