"""ArcSight CEF projection of the canonical event (lossy on purpose).

Header fields escape `\\` and `|`; extension values escape `\\` and `=` and
turn CR/LF into `\\r`/`\\n`. The projection keeps the pivot keys (`externalId` =
event uid, `cn1` = chain sequence, `flexString1` = writer) so an analyst can go
back to the canonical record, which alone carries the MAC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SEVERITY = {1: 3, 2: 4, 3: 5, 4: 7, 5: 9}


def escape_header(value: str) -> str:
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    return value.replace("\r", " ").replace("\n", " ")


def escape_extension(value: str) -> str:
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    return value.replace("\r", "\\r").replace("\n", "\\n")


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _categories(fields: Any, outcomes: tuple[str, ...]) -> str:
    names: set[str] = set()
    if isinstance(fields, Mapping):
        for outcome in outcomes:
            for cats in (fields.get(outcome) or {}).values():
                names.update(cats)
    return ",".join(sorted(names))


def to_cef(
    event: Mapping[str, Any], *, vendor: str, product: str, version: str, host: str = ""
) -> str:
    crm = _get(event, "unmapped", "crm") or {}
    integrity = _get(event, "unmapped", "integrity") or {}
    seal = _get(event, "unmapped", "seal")
    outcome = _get(crm, "decision", "outcome") or ("seal" if seal else "")
    operation = _get(event, "api", "operation") or str(event.get("type") or "audit")
    ext: list[tuple[str, Any]] = [
        ("rt", event.get("time")),
        ("externalId", _get(event, "metadata", "uid")),
        ("suid", _get(event, "actor", "user", "uid")),
        ("suser", _get(event, "actor", "user", "name")),
        ("src", _get(event, "src_endpoint", "ip")),
        ("requestMethod", _get(event, "http_request", "http_method")),
        ("request", _get(event, "http_request", "url", "path")),
        ("act", outcome),
        ("outcome", {1: "success", 2: "failure"}.get(event.get("status_id") or 0)),
        ("cat", "crm.audit.seal" if seal else "crm.access"),
        ("cs1Label", "policyVersion"),
        ("cs1", _get(event, "policy", "version")),
        ("cs2Label", "clearance"),
        ("cs2", crm.get("clearance")),
        ("cs3Label", "customerIds"),
        ("cs3", ",".join(crm.get("record_ids") or [])[:4000]),
        ("cs4Label", "fieldsMasked"),
        (
            "cs4",
            _categories(crm.get("fields"), ("masked", "generalised", "pseudonymised", "redacted")),
        ),
        ("cs5Label", "fieldsBlocked"),
        ("cs5", _categories(crm.get("fields"), ("dropped", "blocked"))),
        ("cs6Label", "requestId"),
        ("cs6", _get(event, "metadata", "correlation_uid")),
        ("cn1Label", "auditSeq"),
        ("cn1", integrity.get("seq")),
        ("cn2Label", "resultCount"),
        ("cn2", _get(crm, "records", "ids_total")),
        ("flexString1Label", "auditWriter"),
        ("flexString1", integrity.get("writer")),
        ("dvchost", host),
    ]
    extension = " ".join(
        f"{k}={escape_extension(str(v))}" for k, v in ext if v is not None and v != ""
    )
    header = [
        "CEF:0",
        escape_header(vendor),
        escape_header(product),
        escape_header(version),
        escape_header(f"{operation}:{outcome}"),
        escape_header(str(event.get("message") or "")),
        str(_SEVERITY.get(event.get("severity_id") or 1, 3)),
    ]
    return "|".join(header) + "|" + extension
