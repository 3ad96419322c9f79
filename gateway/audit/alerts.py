"""Alert events for the SIEM stream, shaped on OCSF 1.8 Detection Finding (2004).

An alert goes through the same `AuditEmitter.emit` as access events, so it is
chained, sealed and shipped like them; the SIEM tells the two apart by
`class_uid` (2004 here, 6003 for access) and `is_alert`. An alert says who, what
kind, how many against which threshold in which window, and what the gateway
did about it. It never carries a customer value or a real customer id: the only
record ids it may name are the decoys (honeytokens), which belong to nobody.
"""

from __future__ import annotations

from typing import Any

from gateway.audit.event import OCSF_VERSION, PRODUCT
from gateway.audit.values import rfc3339, text, uuid7
from gateway.core.findings import Finding

CLASS_UID = 2004
CATEGORY_UID = 2
ACTIVITY_CREATE = 1
# OCSF severity_id: 4 High, 5 Critical.
SEVERITY = {"high": 4, "critical": 5}
_SEVERITY_NAMES = {4: "High", 5: "Critical"}


def detection_finding(
    *,
    at: float,
    severity_id: int,
    message: str | None,
    action_id: int,
    disposition_id: int,
    uid: str,
    title: str,
    kind: str,
) -> dict[str, Any]:
    """The OCSF Detection Finding every alert is (anomaly findings here, governance
    alerts in audit/governance.py): class, time, severity, status, metadata, finding
    info. The caller adds its actor, resources and `unmapped` detail."""
    time_ms = int(at * 1000)
    return {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "severity_id": severity_id,
        "severity": _SEVERITY_NAMES[severity_id],
        "time": time_ms,
        "time_dt": rfc3339(at),
        "status_id": 1,
        "status": "New",
        "is_alert": True,
        "message": message,
        "action_id": action_id,
        "disposition_id": disposition_id,
        "metadata": {
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": uuid7(),
            "log_name": "crm-alerts",
            "profiles": ["security_control", "datetime"],
        },
        "finding_info": {
            "uid": text(uid, 128),
            "title": title,
            "types": [kind],
            "analytic": {"name": kind, "type_id": 1, "type": "Rule"},
            "first_seen_time": time_ms,
        },
    }


_TITLES: dict[str, str] = {
    "distinct_customers": "Unusual number of distinct customers seen",
    "blocked_burst": "Burst of blocked requests",
    "off_hours": "Access outside usual hours",
    "honeytoken": "Decoy customer record accessed",
    "filter_probe": "Repeated filtering or searching by protected fields",
}
_DISPOSITION = {"alert": 19, "throttle": 2, "revoke": 2}  # 19 Alert, 2 Blocked


def _message(f: Finding) -> str:
    if f.kind == "distinct_customers":
        return (
            f"{f.count} distinct customers at {f.level} in {f.window_seconds}s "
            f"(threshold {f.threshold})"
        )
    if f.kind == "blocked_burst":
        return f"{f.count} blocked requests in {f.window_seconds}s (threshold {f.threshold})"
    if f.kind == "filter_probe":
        return (
            f"{f.count} distinct protected values filtered or searched by in "
            f"{f.window_seconds}s (threshold {f.threshold})"
        )
    if f.kind == "off_hours":
        return "access outside usual hours"
    return f"{len(f.decoy_ids)} decoy customer record(s) accessed"


def build_alert(finding: Finding) -> dict[str, Any]:
    """The canonical alert event (no integrity block: the emitter's chain adds it)."""
    severity = finding.severity
    subject = text(finding.subject_id, 128)
    return {
        **detection_finding(
            at=finding.at,
            severity_id=SEVERITY[severity],
            message=_message(finding),
            action_id=1 if finding.action == "alert" else 2,
            disposition_id=_DISPOSITION[finding.action],
            uid=finding.uid,
            title=_TITLES[finding.kind],
            kind=finding.kind,
        ),
        "actor": {"user": {"uid": subject}},
        "resources": [{"uid": d, "type": "crm.customer.decoy"} for d in finding.decoy_ids],
        "unmapped": {
            "crm": {
                "anomaly": {
                    "kind": finding.kind,
                    "level": finding.level,
                    "count": finding.count,
                    "threshold": finding.threshold,
                    "window_seconds": finding.window_seconds,
                    "window_start": rfc3339(finding.window_start),
                    "action": finding.action,
                },
                "honeytoken": finding.kind == "honeytoken",
                "record_ids": list(finding.decoy_ids),
            }
        },
    }
