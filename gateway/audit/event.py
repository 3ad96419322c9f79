"""The canonical audit event: one per access, shaped on OCSF 1.8 API Activity (6003).

The builder reads plain dicts handed over by the handler and copies only the keys
on its allow-lists; anything else is dropped, so a field added upstream (or a
customer value passed by mistake) cannot ride into the audit trail. Strings that
are allowed are still length-capped and scrubbed of identifier-shaped digit runs.
CRM-specific detail lives under `unmapped.crm`; the integrity block is added
later by the chain (`unmapped.integrity`).

Responses that touch many customers are split: the first event carries the first
`ids_per_event` record ids and `crm.chunk = {index: 1, total: m}`; follow-up
events (same `metadata.correlation_uid`) carry the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway import __version__
from gateway.audit.scrub import scrub_many
from gateway.audit.values import count, counts, field_counts, flag, rfc3339, text, tokens, uuid7

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


def _request_uid(value: Any) -> str | None:
    if type(value) is str and _REQUEST_ID.fullmatch(value):
        return value
    return text(value, 128)


def _outcome(allow: bool, fields: Mapping[str, Any], blocked: str | None) -> str:
    if not allow:
        return "deny"
    if blocked:
        return "blocked"
    changed = any(k != "clear" for k in fields)
    return "allow_masked" if changed else "allow"


def _severity(outcome: str, fields: Mapping[str, Any], honeytoken: bool, ids: int) -> int:
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
) -> dict[str, Any]:
    """One canonical event from allow-listed keys of the handler's dicts.

    `subject_dict` is `Subject.to_policy()` plus `ip` (and optionally `display_name`,
    `session_id`); `request_dict` has `method`, `route` (template), `purpose`,
    `operation`, `pii_categories`, `honeytoken`, `justification`; `decision_dict`
    has `allow`, `reason`, `revision`, `cache_hit`, `report_only`, `audit_level`;
    `report_dict` is `EnforcementReport.to_audit()` (or None for a refused request).
    `now` is epoch seconds. Record ids are all kept here; `split_record_ids` chunks them.
    `phase` is "final" (the request's outcome) or "release" (strict audit: written
    durably before the data left; the same request's "final" event follows).
    """
    report = report_dict or {}
    request_uid = _request_uid(request_id)
    raw_records = report.get("records")
    records: Mapping[str, Any] = raw_records if isinstance(raw_records, dict) else {}
    fields = field_counts(report.get("fields"))
    blocked = text(report.get("blocked"))
    allow = flag(decision_dict.get("allow"))
    honeytoken = flag(request_dict.get("honeytoken")) or flag(report.get("honeytoken"))
    raw_method = str(request_dict.get("method") or "").upper()
    method = raw_method if _METHOD.fullmatch(raw_method) else "OTHER"
    activity_id, activity_name = _ACTIVITY.get(method, (99, "Other"))
    route = text(request_dict.get("route"), 512) or ""
    operation = text(request_dict.get("operation"), 128) or f"{method} {route}"
    raw_ids = records.get("ids")
    ids = scrub_many([str(i) for i in raw_ids]) if isinstance(raw_ids, list) else []
    ids_total = max(count(records.get("ids_total")), len(ids))
    outcome = _outcome(allow, fields, blocked)
    time_ms = int(now * 1000)
    roles = tokens(subject_dict.get("roles"))
    actor_user: dict[str, Any] = {
        "uid": text(subject_dict.get("id"), 128),
        "name": text(subject_dict.get("display_name"), 128),
        "groups": [{"name": r} for r in roles],
        "org": {"name": text(subject_dict.get("department"), 128)},
    }
    return {
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "severity_id": _severity(outcome, fields, honeytoken, ids_total),
        "time": time_ms,
        "time_dt": rfc3339(now),
        "status_id": 1 if status < 400 else 2,
        "status_code": str(status),
        "action_id": {"allow": 1, "allow_masked": 4}.get(outcome, 2),
        "disposition_id": 1 if outcome in ("allow", "allow_masked") else 2,
        "message": f"crm access {outcome}",
        "duration": int(latency_ms),
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": uuid7(),
            "correlation_uid": request_uid,
            "log_name": "crm-audit",
            "profiles": ["security_control", "datetime"],
        },
        "actor": {
            "user": actor_user,
            "session": {
                "uid": text(subject_dict.get("session_id"), 128),
                "is_mfa": flag(subject_dict.get("mfa")),
            },
        },
        "src_endpoint": {"ip": text(subject_dict.get("ip"), 64)},
        "http_request": {
            "http_method": method,
            "url": {"path": route},
            "uid": request_uid,
        },
        "http_response": {"code": status},
        "api": {
            "operation": operation,
            "service": {"name": "crm"},
            "request": {"uid": request_uid},
        },
        "policy": {
            "name": "crm.gateway",
            "version": text(decision_dict.get("revision"), 128),
            "is_applied": not flag(decision_dict.get("report_only")),
        },
        "unmapped": {
            "crm": {
                "purpose": text(request_dict.get("purpose"), 128),
                "justification_given": bool(request_dict.get("justification")),
                "reveal_handles": count(request_dict.get("reveal_handles")),
                "clearance": text(subject_dict.get("clearance"), 16),
                "auth_method": text(subject_dict.get("auth_method"), 32),
                "partner": flag(subject_dict.get("partner")),
                "decision": {
                    "allow": allow,
                    "outcome": outcome,
                    "reason": text(decision_dict.get("reason")),
                    "revision": text(decision_dict.get("revision"), 128),
                    "cache_hit": flag(decision_dict.get("cache_hit")),
                    "report_only": flag(decision_dict.get("report_only")),
                    "audit_level": text(decision_dict.get("audit_level"), 16),
                },
                "status": status,
                "latency_ms": int(latency_ms),
                "request_pii": tokens(request_dict.get("pii_categories")),
                "honeytoken": honeytoken,
                "records": {
                    "seen": count(records.get("seen")),
                    "dropped": count(records.get("dropped")),
                    "ids_total": ids_total,
                    "ids_truncated": flag(records.get("ids_truncated")),
                    "clear_by_level": counts(records.get("clear_by_level"), 1),
                    "bulk_limited_by_level": counts(records.get("bulk_limited_by_level"), 1),
                },
                "record_ids": ids,
                "chunk": {"index": 1, "total": 1},
                "grades": counts(report.get("grades"), 1),
                "tiers": counts(report.get("tiers"), 1),
                "fields": fields,
                "detectors": counts(report.get("detectors"), 1),
                "record_rules": counts(report.get("record_rules"), 1),
                "side_data": counts(report.get("side_data"), 1),
                "blocked": blocked,
                "phase": "release" if phase == "release" else "final",
            }
        },
    }


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


def requires_durable(report_dict: dict[str, Any] | None, strict_levels: tuple[str, ...]) -> bool:
    """True when the response carries a field of a strict level (`audit.strict_levels`)
    in any form other than dropped or blocked: the handler then awaits `emit_durable`
    before releasing the body (audit before release, fail closed)."""
    if not strict_levels or not report_dict:
        return False
    fields = report_dict.get("fields")
    if not isinstance(fields, dict):
        return False
    wanted = set(strict_levels)
    for outcome, levels in fields.items():
        if outcome in ("dropped", "blocked") or not isinstance(levels, dict):
            continue
        if any(
            lvl in wanted and any(cats.values())
            for lvl, cats in levels.items()
            if isinstance(cats, dict)
        ):
            return True
    return False


def build_access_events(*, ids_per_event: int = 500, **kwargs: Any) -> list[dict[str, Any]]:
    """`build_access_event` then `split_record_ids`: what the handler emits."""
    return split_record_ids(build_access_event(**kwargs), ids_per_event)
