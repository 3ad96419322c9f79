"""The canonical audit event: one per access, shaped on OCSF 1.8 API Activity (6003).

The builder reads typed views of one access (`AuditSubject`, `AuditRequest`,
`AuditDecision` and the enforcer's `ReportSummary`) and copies only their fields,
so a field added upstream (or a customer value passed by mistake) cannot ride
into the audit trail. Strings are still length-capped and scrubbed of
identifier-shaped digit runs. Each part of the event has its own small
projector; `build_access_event` keeps the keyword form over plain mappings for
tools and tests, and parses them into the same views first.
CRM-specific detail lives under `unmapped.crm`; the integrity block is added
later by the chain (`unmapped.integrity`).

Responses that touch many customers are split: the first event carries the first
`ids_per_event` record ids and `crm.chunk = {index: 1, total: m}`; follow-up
events (same `metadata.correlation_uid`) carry the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway import __version__
from gateway.audit.scrub import scrub_many
from gateway.audit.values import (
    count,
    counts,
    field_counts,
    flag,
    outcome_counts,
    rfc3339,
    text,
    token_counts,
    tokens,
    uuid7,
)
from gateway.core.report import FieldOutcomes, RecordSummary, ReportSummary

OCSF_VERSION = "1.8.0"
CLASS_UID = 6003
CATEGORY_UID = 6
_ACTIVITY = {"POST": (1, "Create"), "GET": (2, "Read"), "HEAD": (2, "Read")}
_ACTIVITY.update({"PUT": (3, "Update"), "PATCH": (3, "Update"), "DELETE": (4, "Delete")})
_METHOD = re.compile(r"[A-Z]{1,16}")
HIGH_LEVELS = frozenset({"L4", "L5"})
PRODUCT = {"name": "crm-gateway", "vendor_name": "crm-gateway", "version": __version__}
# The handler's request ids (uuid4 hex, or a UUID) are gateway-made tokens, never PII:
# scrubbing them would break the one join key between a response's X-Request-Id and
# its audit events (about 1 id in 300 has a digit run of a mobile's or card's shape).
_REQUEST_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}")


Event = dict[str, Any]  # the canonical event: JSON-shaped, what the chain and sinks take


@dataclass(frozen=True, slots=True)
class AuditSubject:
    """Who made the request (`Subject` fields plus the resolved client address)."""

    id: str | None = None
    ip: str | None = None
    display_name: str | None = None
    session_id: str | None = None
    department: str | None = None
    roles: tuple[str, ...] = ()
    mfa: bool = False
    clearance: str | None = None
    auth_method: str | None = None
    partner: bool = False


@dataclass(frozen=True, slots=True)
class AuditRequest:
    """What was asked: method, route template, operation, purpose, request-side PII."""

    method: str = ""
    route: str = ""
    operation: str | None = None
    purpose: str | None = None
    pii_categories: tuple[str, ...] = ()
    justification: bool = False
    honeytoken: bool = False
    reveal_handles: int = 0


@dataclass(frozen=True, slots=True)
class AuditDecision:
    """The policy's answer as audited (reason joined with the request's error)."""

    allow: bool = False
    reason: str | None = None
    revision: str | None = None
    cache_hit: bool = False
    report_only: bool = False
    audit_level: str | None = None


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """Everything one access event says, typed; `access_event` projects it."""

    request_id: str
    subject: AuditSubject
    request: AuditRequest
    decision: AuditDecision
    report: ReportSummary
    status: int
    latency_ms: float
    now: float  # epoch seconds
    phase: str = "final"  # "final", or "release" (strict audit: durable before data left)


def _request_uid(value: str) -> str | None:
    if _REQUEST_ID.fullmatch(value):
        return value
    return text(value, 128)


def _method(raw: str) -> str:
    method = raw.upper()
    return method if _METHOD.fullmatch(method) else "OTHER"


def _outcome(allow: bool, fields: FieldOutcomes, blocked: str | None) -> str:
    if not allow:
        return "deny"
    if blocked:
        return "blocked"
    changed = any(k != "clear" for k in fields)
    return "allow_masked" if changed else "allow"


def _severity(outcome: str, fields: FieldOutcomes, honeytoken: bool, ids: int) -> int:
    """1 info, 2 low, 3 medium (L4/L5 shown), 4 high (L4/L5 refused, bulk), 5 honeytoken."""
    if honeytoken:
        return 5
    clear_high = bool(HIGH_LEVELS & set(fields.get("clear", {})))
    refused_high = any(
        HIGH_LEVELS & set(fields.get(k, {})) for k in ("blocked", "dropped", "masked")
    )
    if outcome in ("deny", "blocked") or ids > 1000:
        return 4
    if clear_high:
        return 3
    return 2 if refused_high else 1


@dataclass(frozen=True, slots=True)
class _Derived:
    """Values several projectors share, computed once per event."""

    uid: str | None
    method: str
    route: str
    outcome: str
    fields: dict[str, dict[str, dict[str, int]]]
    blocked: str | None
    ids: list[str]
    ids_total: int
    honeytoken: bool


def _derive(facts: AccessFacts) -> _Derived:
    report = facts.report
    fields = outcome_counts(report.fields)
    blocked = text(report.blocked)
    ids = scrub_many(list(report.records.ids))
    return _Derived(
        uid=_request_uid(facts.request_id),
        method=_method(facts.request.method),
        route=text(facts.request.route, 512) or "",
        outcome=_outcome(facts.decision.allow, fields, blocked),
        fields=fields,
        blocked=blocked,
        ids=ids,
        ids_total=max(report.records.ids_total, len(ids)),
        honeytoken=facts.request.honeytoken,
    )


def _classification(facts: AccessFacts, d: _Derived) -> Event:
    """The OCSF class, activity, severity, status and disposition attributes."""
    activity_id, activity_name = _ACTIVITY.get(d.method, (99, "Other"))
    return {
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "severity_id": _severity(d.outcome, d.fields, d.honeytoken, d.ids_total),
        "time": int(facts.now * 1000),
        "time_dt": rfc3339(facts.now),
        "status_id": 1 if facts.status < 400 else 2,
        "status_code": str(facts.status),
        "action_id": {"allow": 1, "allow_masked": 4}.get(d.outcome, 2),
        "disposition_id": 1 if d.outcome in ("allow", "allow_masked") else 2,
        "message": f"crm access {d.outcome}",
        "duration": int(facts.latency_ms),
    }


def _metadata(d: _Derived) -> Event:
    return {
        "version": OCSF_VERSION,
        "product": PRODUCT,
        "uid": uuid7(),
        "correlation_uid": d.uid,
        "log_name": "crm-audit",
        "profiles": ["security_control", "datetime"],
    }


def _actor(subject: AuditSubject) -> Event:
    return {
        "user": {
            "uid": text(subject.id, 128),
            "name": text(subject.display_name, 128),
            "groups": [{"name": r} for r in tokens(subject.roles)],
            "org": {"name": text(subject.department, 128)},
        },
        "session": {"uid": text(subject.session_id, 128), "is_mfa": subject.mfa},
    }


def _api(facts: AccessFacts, d: _Derived) -> Event:
    """`src_endpoint`, `http_request`, `http_response`, `api` and `policy`."""
    operation = text(facts.request.operation, 128) or f"{d.method} {d.route}"
    return {
        "src_endpoint": {"ip": text(facts.subject.ip, 64)},
        "http_request": {"http_method": d.method, "url": {"path": d.route}, "uid": d.uid},
        "http_response": {"code": facts.status},
        "api": {
            "operation": operation,
            "service": {"name": "crm"},
            "request": {"uid": d.uid},
        },
        "policy": {
            "name": "crm.gateway",
            "version": text(facts.decision.revision, 128),
            "is_applied": not facts.decision.report_only,
        },
    }


def _crm_decision(decision: AuditDecision, outcome: str) -> Event:
    return {
        "allow": decision.allow,
        "outcome": outcome,
        "reason": text(decision.reason),
        "revision": text(decision.revision, 128),
        "cache_hit": decision.cache_hit,
        "report_only": decision.report_only,
        "audit_level": text(decision.audit_level, 16),
    }


def _crm_records(records: RecordSummary, ids_total: int) -> Event:
    return {
        "seen": records.seen,
        "dropped": records.dropped,
        "ids_total": ids_total,
        "ids_truncated": records.ids_truncated,
        "clear_by_level": token_counts(records.clear_by_level),
        "bulk_limited_by_level": token_counts(records.bulk_limited_by_level),
    }


def _crm(facts: AccessFacts, d: _Derived) -> Event:
    """`unmapped.crm`: the gateway's own detail (purpose, decision, records, counts)."""
    subject, request, report = facts.subject, facts.request, facts.report
    return {
        "purpose": text(request.purpose, 128),
        "justification_given": request.justification,
        "reveal_handles": request.reveal_handles,
        "clearance": text(subject.clearance, 16),
        "auth_method": text(subject.auth_method, 32),
        "partner": subject.partner,
        "decision": _crm_decision(facts.decision, d.outcome),
        "status": facts.status,
        "latency_ms": int(facts.latency_ms),
        "request_pii": tokens(request.pii_categories),
        "honeytoken": d.honeytoken,
        "records": _crm_records(report.records, d.ids_total),
        "record_ids": d.ids,
        "chunk": {"index": 1, "total": 1},
        "grades": token_counts(report.grades),
        "tiers": token_counts(report.tiers),
        "fields": d.fields,
        "detectors": token_counts(report.detectors),
        "record_rules": token_counts(report.record_rules),
        "side_data": token_counts(report.side_data),
        "blocked": d.blocked,
        "phase": "release" if facts.phase == "release" else "final",
    }


def access_event(facts: AccessFacts) -> Event:
    """One canonical event, assembled from its parts' projectors. Record ids are all
    kept here; `split_record_ids` chunks them."""
    d = _derive(facts)
    return {
        **_classification(facts, d),
        "metadata": _metadata(d),
        "actor": _actor(facts.subject),
        **_api(facts, d),
        "unmapped": {"crm": _crm(facts, d)},
    }


def access_events(facts: AccessFacts, ids_per_event: int = 500) -> list[Event]:
    """`access_event` then `split_record_ids`: what the handler emits."""
    return split_record_ids(access_event(facts), ids_per_event)


# -- the keyword form over plain mappings (tools, tests, replayed input) -------------


def subject_from(data: Mapping[str, Any]) -> AuditSubject:
    """`Subject.to_policy()` plus `ip` (and optionally `display_name`, `session_id`)."""
    return AuditSubject(
        id=text(data.get("id"), 128),
        ip=text(data.get("ip"), 64),
        display_name=text(data.get("display_name"), 128),
        session_id=text(data.get("session_id"), 128),
        department=text(data.get("department"), 128),
        roles=tuple(tokens(data.get("roles"))),
        mfa=flag(data.get("mfa")),
        clearance=text(data.get("clearance"), 16),
        auth_method=text(data.get("auth_method"), 32),
        partner=flag(data.get("partner")),
    )


def request_from(data: Mapping[str, Any], report: Mapping[str, Any]) -> AuditRequest:
    return AuditRequest(
        method=str(data.get("method") or ""),
        route=text(data.get("route"), 512) or "",
        operation=text(data.get("operation"), 128),
        purpose=text(data.get("purpose"), 128),
        pii_categories=tuple(tokens(data.get("pii_categories"))),
        justification=bool(data.get("justification")),
        honeytoken=flag(data.get("honeytoken")) or flag(report.get("honeytoken")),
        reveal_handles=count(data.get("reveal_handles")),
    )


def decision_from(data: Mapping[str, Any]) -> AuditDecision:
    return AuditDecision(
        allow=flag(data.get("allow")),
        reason=text(data.get("reason")),
        revision=text(data.get("revision"), 128),
        cache_hit=flag(data.get("cache_hit")),
        report_only=flag(data.get("report_only")),
        audit_level=text(data.get("audit_level"), 16),
    )


def report_from(data: Mapping[str, Any] | None) -> ReportSummary:
    """`EnforcementReport.to_audit()`'s shape back into a summary; odd values dropped."""
    report = data or {}
    raw = report.get("records")
    records: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    raw_ids = records.get("ids")
    ids = scrub_many([str(i) for i in raw_ids]) if isinstance(raw_ids, list) else []
    return ReportSummary(
        records=RecordSummary(
            seen=count(records.get("seen")),
            dropped=count(records.get("dropped")),
            ids=tuple(ids),
            ids_total=max(count(records.get("ids_total")), len(ids)),
            ids_truncated=flag(records.get("ids_truncated")),
            clear_by_level=counts(records.get("clear_by_level"), 1),
            bulk_limited_by_level=counts(records.get("bulk_limited_by_level"), 1),
        ),
        grades=counts(report.get("grades"), 1),
        tiers=counts(report.get("tiers"), 1),
        fields=field_counts(report.get("fields")),
        detectors=counts(report.get("detectors"), 1),
        record_rules=counts(report.get("record_rules"), 1),
        side_data=counts(report.get("side_data"), 1),
        blocked=text(report.get("blocked")),
    )


def build_access_event(
    *,
    request_id: str,
    subject_dict: Mapping[str, Any],
    request_dict: Mapping[str, Any],
    decision_dict: Mapping[str, Any],
    report_dict: Mapping[str, Any] | None,
    status: int,
    latency_ms: float,
    now: float,
    phase: str = "final",
) -> Event:
    """`access_event` over plain mappings: only allow-listed keys are read.

    `request_dict` has `method`, `route` (template), `purpose`, `operation`,
    `pii_categories`, `honeytoken`, `justification`, `reveal_handles`;
    `decision_dict` has `allow`, `reason`, `revision`, `cache_hit`, `report_only`,
    `audit_level`; `report_dict` is `EnforcementReport.to_audit()` (or None).
    """
    return access_event(
        AccessFacts(
            request_id=str(request_id),
            subject=subject_from(subject_dict),
            request=request_from(request_dict, report_dict or {}),
            decision=decision_from(decision_dict),
            report=report_from(report_dict),
            status=status,
            latency_ms=latency_ms,
            now=now,
            phase=phase,
        )
    )


def split_record_ids(event: dict[str, Any], ids_per_event: int = 500) -> list[dict[str, Any]]:
    """The event plus linked follow-ups when it lists more than `ids_per_event` ids.

    Follow-ups repeat who/when/what (so each stands alone in a SIEM) but carry only
    their slice of ids; counts stay on part 1 so sums over a request are not doubled.
    """
    crm = event["unmapped"]["crm"]
    ids: list[str] = crm["record_ids"]
    if len(ids) <= ids_per_event:
        return [event]
    parts = [ids[i : i + ids_per_event] for i in range(0, len(ids), ids_per_event)]
    total = len(parts)
    crm["record_ids"] = parts[0]
    crm["chunk"] = {"index": 1, "total": total}
    out = [event]
    for n, part in enumerate(parts[1:], start=2):
        follow = {k: v for k, v in event.items() if k != "unmapped"}
        follow["metadata"] = {**event["metadata"], "uid": uuid7()}
        follow["message"] = f"{event['message']} (record ids, part {n} of {total})"
        follow["unmapped"] = {
            "crm": {
                "decision": crm["decision"],
                "clearance": crm["clearance"],
                "purpose": crm["purpose"],
                "record_ids": part,
                "chunk": {"index": n, "total": total},
            }
        }
        out.append(follow)
    return out


def requires_durable(report: ReportSummary | None, strict_levels: tuple[str, ...]) -> bool:
    """True when the response carries a field of a strict level (`audit.strict_levels`)
    in any form other than dropped or blocked: the handler then awaits `emit_durable`
    before releasing the body (audit before release, fail closed)."""
    if not strict_levels or report is None:
        return False
    return report.shown_at(set(strict_levels))


def build_access_events(*, ids_per_event: int = 500, **kwargs: Any) -> list[Event]:
    """`build_access_event` then `split_record_ids`."""
    return split_record_ids(build_access_event(**kwargs), ids_per_event)
