"""Alerts travel the same road as access events: the real AuditEmitter chains them
into the real Redis audit stream, and the stream still verifies.

Two detectors share one redis-server (two replicas), each emitting through its own
emitter, as `app.py` wires them: `emit` renders each finding with `build_alert`
into `audit.emit`, `revoke=revocations.revoke`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as redis_sync

from gateway.audit.alerts import build_alert
from gateway.audit.emitter import AuditEmitter
from gateway.audit.verify import verify_stream
from gateway.core.findings import Finding
from gateway.core.report import RecordSummary, ReportSummary
from gateway.monitor.anomaly import AnomalyDetector, ids_by_level
from gateway.settings import Settings
from gateway.state.revocation import RevocationList

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATEWAY_AUDIT_KEY", "cd" * 32)


def _settings(tmp_path: Path, redis_url: str) -> Settings:
    return Settings().with_overrides(
        **{
            "redis.url": redis_url,
            "base_dir": str(tmp_path),
            "audit.stream": "test:audit",
            "monitor.enabled": True,
            "monitor.distinct_customers": {"L4": 20},
            "monitor.honeytokens": ["C999901"],
            "monitor.action": "revoke",
        }
    )


def _stream(url: str) -> list[dict[str, Any]]:
    client = redis_sync.Redis.from_url(url)
    try:
        rows: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange("test:audit")  # type: ignore[assignment]
        return [orjson.loads(fields[b"e"]) for _, fields in rows]
    finally:
        client.close()


def _report(record_ids: list[str]) -> ReportSummary:
    """What `EnforcementReport.summary()` says for a list showing L4 in clear."""
    return ReportSummary(
        records=RecordSummary(ids=tuple(record_ids), clear_by_level={"L4": len(record_ids)})
    )


def _alerts_to(emitter: AuditEmitter) -> Callable[[Finding], None]:
    return lambda finding: emitter.emit(build_alert(finding))


async def test_alerts_reach_the_audit_stream_and_revoke(tmp_path: Path, redis_url: str) -> None:
    settings = _settings(tmp_path, redis_url)
    revocations = await RevocationList.open(redis_url)
    emitters = [await AuditEmitter.open(settings) for _ in range(2)]
    detectors = [
        await AnomalyDetector.open(settings, emit=_alerts_to(e), revoke=_revoker(revocations))
        for e in emitters
    ]
    try:
        for n, det in enumerate(detectors):  # 12 customers through each replica
            for i in range(12):
                report = _report([f"C{n * 100 + i:06d}"])
                det.observe(
                    subject_id="u-eve",
                    record_ids_by_level=ids_by_level(report),
                    blocked=False,
                    now=NOW,
                )
            await det.flush()
        detectors[0].observe(
            subject_id="u-trent",
            record_ids_by_level=ids_by_level(_report(["C999901"])),
            blocked=False,
            now=NOW,
        )
    finally:
        for det in detectors:
            await det.close()
        for e in emitters:
            await e.close()
    try:
        assert revocations.is_revoked("u-eve")
        assert not revocations.is_revoked("u-trent")  # honeytoken action: alert only
    finally:
        await revocations.close()
    alerts = [e for e in _stream(redis_url) if e.get("class_uid") == 2004]
    kinds = sorted(a["unmapped"]["crm"]["anomaly"]["kind"] for a in alerts)
    assert kinds == ["distinct_customers", "honeytoken"]
    for alert in alerts:
        assert alert["unmapped"]["integrity"]["mac"]
    volume = next(a for a in alerts if a["finding_info"]["types"] == ["distinct_customers"])
    assert volume["actor"]["user"]["uid"] == "u-eve"
    assert volume["resources"] == []
    assert "C000001" not in orjson.dumps(volume).decode()
    verified = await verify_stream(settings, require_closed=True)
    assert verified.ok, verified.summary()


def _revoker(revocations: RevocationList) -> Callable[[str, str], Awaitable[None]]:
    async def revoke(subject: str, reason: str) -> None:
        await revocations.revoke(subject, reason=reason, by="anomaly-detector")

    return revoke
