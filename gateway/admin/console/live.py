"""The live view: the newest audit events, projected to metadata only.

Audit events never hold customer values; they do hold record ids and request
paths. The console shows neither: a row is the time, who, the route with every
id-like path segment elided, the operation, the outcome and counts (records seen
and dropped, fields shown in clear / masked by level). Governance events show
their action, actor, subject and reason (already scrubbed of identifier-shaped
digit runs by the audit module); alerts their title and the gateway's message.

Source: the Redis audit stream when `redis.url` is set (every replica writes
there), else the tail of `audit.file`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.settings import Settings
from gateway.state.audit_stream import AuditStream, StreamUnavailable

TAIL_BYTES = 512 * 1024
_ID_LIKE = re.compile(r"\d{3,}|[0-9a-f]{16,}", re.IGNORECASE)


async def recent_events(settings: Settings, count: int) -> tuple[list[dict[str, Any]], str]:
    """(newest first, source description)."""
    if settings.redis.url:
        stream = AuditStream.open(settings.redis.url, settings.audit.stream, timeout=2.0)
        try:
            entries = await stream.read_recent(count * 2)  # seals and follow-ups are skipped
        except StreamUnavailable:
            return [], "redis (unavailable)"
        finally:
            await stream.close()
        return _parse([payload for _, payload in entries])[:count], "redis"
    if "file" not in settings.audit.sinks:
        return [], "none"
    path = settings.path(settings.audit.file)

    def tail() -> list[bytes]:
        try:
            with path.open("rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(max(0, size - TAIL_BYTES))
                lines = fh.read().splitlines()
        except OSError:
            return []
        return list(reversed(lines[1:] if size > TAIL_BYTES else lines))

    return _parse(await asyncio.to_thread(tail))[:count], "file"


def _parse(payloads: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for raw in payloads:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict):
            row = project(event)
            if row is not None:
                out.append(row)
    return out


def elide(path: str) -> str:
    return "/".join("…" if _ID_LIKE.search(seg) else seg for seg in path.split("/"))


def _counts(by_level: Any) -> str:
    if not isinstance(by_level, Mapping):
        return ""
    parts = []
    for level in sorted(by_level):
        cats = by_level[level]
        n = sum(v for v in cats.values() if isinstance(v, int)) if isinstance(cats, Mapping) else 0
        if n:
            parts.append(f"{level}:{n}")
    return " ".join(parts)


def project(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """One row of metadata, or None for seals, record-id follow-ups and the
    before-release copy of a durably audited access (its final event follows)."""
    unmapped = event.get("unmapped") or {}
    actor = ((event.get("actor") or {}).get("user") or {}).get("uid") or ""
    base = {"time": str(event.get("time_dt") or ""), "actor": str(actor)}
    if event.get("class_uid") == 2004:
        finding = event.get("finding_info") or {}
        return {**base, "kind": "alert", "title": str(finding.get("title") or ""),
                "message": str(event.get("message") or "")}  # fmt: skip
    governance = unmapped.get("governance") if isinstance(unmapped, Mapping) else None
    if isinstance(governance, Mapping):
        return {
            **base,
            "kind": "governance",
            "action": str(governance.get("action") or ""),
            "actor": str(governance.get("actor") or governance.get("reviewer") or actor),
            "subject": str(governance.get("subject") or ""),
            "reason": str(governance.get("reason") or ""),
        }
    crm = unmapped.get("crm") if isinstance(unmapped, Mapping) else None
    if not isinstance(crm, Mapping) or "fields" not in crm or crm.get("phase") == "release":
        return None
    fields = crm.get("fields") or {}
    records = crm.get("records") or {}
    decision = crm.get("decision") or {}
    request = event.get("http_request") or {}
    return {
        **base,
        "kind": "access",
        "method": str(request.get("http_method") or ""),
        "route": elide(str((request.get("url") or {}).get("path") or "")),
        "operation": elide(str((event.get("api") or {}).get("operation") or "")),
        "outcome": str(decision.get("outcome") or ""),
        "status": crm.get("status"),
        "records_seen": records.get("seen"),
        "records_dropped": records.get("dropped"),
        "fields_clear": _counts(fields.get("clear") if isinstance(fields, Mapping) else None),
        "fields_masked": _counts(fields.get("masked") if isinstance(fields, Mapping) else None),
    }
