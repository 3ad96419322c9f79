"""Two detectors on one real redis-server behave as two gateway replicas.

Each `AnomalyDetector` has its own queue, batch task and local throttle cache, and
they share nothing but Redis, exactly like two gateway processes. A subject that
spreads its requests over both must be counted once, and each breach must raise
one alert, not one per replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.audit.alerts import build_alert
from gateway.core.findings import Finding
from gateway.monitor.anomaly import AnomalyDetector
from gateway.settings import Settings
from gateway.state.keys import anomaly as anomaly_key
from gateway.state.revocation import RevocationList

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)
SUBJECT = "u-mallory"


def _settings(url: str, **monitor: Any) -> Settings:
    base: dict[str, Any] = {
        "enabled": True,
        "distinct_customers": {"L3": 40},
        "blocked_burst_count": 20,
        "refresh_seconds": 0.05,
    }
    base.update(monitor)
    return Settings.model_validate({"redis": {"url": url}, "monitor": base})


def ids(n: int, start: int = 0) -> list[str]:
    return [f"C{start + i:06d}" for i in range(n)]


class Replicas:
    """Two detectors and what each emitted and revoked."""

    def __init__(self) -> None:
        self.events: list[list[dict[str, Any]]] = [[], []]
        self.revoked: list[str] = []
        self.detectors: list[AnomalyDetector] = []

    async def open(self, settings: Settings, revocations: RevocationList | None = None) -> None:
        async def revoke(subject: str, reason: str) -> None:
            self.revoked.append(subject)
            if revocations is not None:
                await revocations.revoke(subject, reason=reason, by="anomaly-detector")

        for i in range(2):
            det = await AnomalyDetector.open(settings, emit=self._collector(i), revoke=revoke)
            self.detectors.append(det)

    def _collector(self, replica: int) -> Callable[[Finding], None]:
        return lambda finding: self.events[replica].append(build_alert(finding))

    @property
    def a(self) -> AnomalyDetector:
        return self.detectors[0]

    @property
    def b(self) -> AnomalyDetector:
        return self.detectors[1]

    def alerts(self) -> list[dict[str, Any]]:
        return self.events[0] + self.events[1]

    async def flush(self) -> None:
        await asyncio.gather(*(d.flush() for d in self.detectors))

    async def close(self) -> None:
        for det in self.detectors:
            await det.close()


@pytest.fixture
async def replicas() -> AsyncIterator[Replicas]:
    r = Replicas()
    yield r
    await r.close()


def see(
    det: AnomalyDetector,
    level_ids: dict[str, list[str]],
    *,
    blocked: bool = False,
    now: datetime = T0,
) -> None:
    det.observe(subject_id=SUBJECT, record_ids_by_level=level_ids, blocked=blocked, now=now)


async def test_distinct_customers_across_replicas_trip_exactly_once(
    redis_url: str, replicas: Replicas
) -> None:
    await replicas.open(_settings(redis_url))
    for i in range(25):  # 25 customers seen through replica A, one request each
        see(replicas.a, {"L3": ids(1, start=i)})
    await replicas.flush()
    assert replicas.alerts() == []
    for i in range(25):  # 25 others through replica B: 50 in the window
        see(replicas.b, {"L3": ids(1, start=100 + i)})
    await replicas.flush()
    assert len(replicas.alerts()) == 1
    assert len(replicas.events[1]) == 1  # B saw the total cross the threshold
    anomaly = replicas.alerts()[0]["unmapped"]["crm"]["anomaly"]
    assert anomaly["level"] == "L3"
    assert anomaly["threshold"] == 40
    assert 45 <= anomaly["count"] <= 55  # HyperLogLog: close, not exact
    # More of the same on both replicas: the claim is taken, no second alert.
    see(replicas.a, {"L3": ids(30, start=500)})
    see(replicas.b, {"L3": ids(30, start=700)})
    await replicas.flush()
    assert len(replicas.alerts()) == 1
    # The counters live in Redis with an expiry.
    client = aioredis.Redis.from_url(redis_url)
    try:
        bucket = str(int(T0.timestamp()) // 3600)
        key = anomaly_key("customers.L3", SUBJECT, bucket)
        assert 0 < await client.ttl(key) <= 7200
        assert await client.pfcount(key) >= 100
    finally:
        await client.aclose()


async def test_simultaneous_breach_on_both_replicas_alerts_once(
    redis_url: str, replicas: Replicas
) -> None:
    await replicas.open(_settings(redis_url))
    for _ in range(5):
        see(replicas.a, {"L3": ids(50)})
        see(replicas.b, {"L3": ids(50, start=25)})
        await replicas.flush()
    assert len(replicas.alerts()) == 1


async def test_blocked_bursts_add_up_across_replicas(redis_url: str, replicas: Replicas) -> None:
    await replicas.open(_settings(redis_url))
    for _ in range(10):
        see(replicas.a, {}, blocked=True)
    await replicas.flush()
    for _ in range(9):
        see(replicas.b, {}, blocked=True)
    await replicas.flush()
    assert replicas.alerts() == []
    see(replicas.a, {}, blocked=True, now=T0 + timedelta(seconds=5))
    await replicas.flush()
    kinds = [e["unmapped"]["crm"]["anomaly"]["kind"] for e in replicas.alerts()]
    assert kinds == ["blocked_burst"]
    assert replicas.alerts()[0]["unmapped"]["crm"]["anomaly"]["count"] == 20


async def test_revoke_action_revokes_on_every_replica(redis_url: str, replicas: Replicas) -> None:
    revocations = await RevocationList.open(redis_url)
    watcher = await RevocationList.open(redis_url)  # a third replica's list
    try:
        await replicas.open(_settings(redis_url, action="revoke"), revocations)
        see(replicas.a, {"L3": ids(30)})
        see(replicas.b, {"L3": ids(30, start=30)})
        await replicas.flush()
        assert replicas.revoked == [SUBJECT]
        assert len(replicas.alerts()) == 1
        assert replicas.alerts()[0]["unmapped"]["crm"]["anomaly"]["action"] == "revoke"
        for _ in range(100):
            if watcher.is_revoked(SUBJECT):
                break
            await asyncio.sleep(0.02)
        assert watcher.is_revoked(SUBJECT)
    finally:
        await revocations.close()
        await watcher.close()


async def test_throttle_set_by_one_replica_reaches_the_other(
    redis_url: str, replicas: Replicas
) -> None:
    await replicas.open(_settings(redis_url, action="throttle", throttle_seconds=60))
    assert not replicas.b.is_throttled(SUBJECT)
    see(replicas.a, {"L3": ids(45)})
    await replicas.flush()
    assert replicas.a.is_throttled(SUBJECT)  # at once on the replica that tripped
    for _ in range(100):  # the other one within its refresh interval (50 ms here)
        if replicas.b.is_throttled(SUBJECT):
            break
        await asyncio.sleep(0.02)
    assert replicas.b.is_throttled(SUBJECT)
    assert not replicas.b.is_throttled("u-someone-else")


async def test_honeytoken_revoke_through_the_shared_list(
    redis_url: str, replicas: Replicas
) -> None:
    revocations = await RevocationList.open(redis_url)
    try:
        settings = _settings(redis_url, honeytokens=["C999901"], honeytoken_action="revoke")
        await replicas.open(settings, revocations)
        see(replicas.b, {"L1": ["C000001", "C999901"]})
        assert len(replicas.events[1]) == 1  # immediately, before any await
        assert replicas.events[1][0]["severity_id"] == 5
        for _ in range(100):
            if revocations.is_revoked(SUBJECT):
                break
            await asyncio.sleep(0.02)
        assert revocations.is_revoked(SUBJECT)
    finally:
        await replicas.close()
        await revocations.close()


async def test_redis_down_falls_back_to_this_process(replicas: Replicas) -> None:
    from tests.conftest import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    await replicas.open(_settings(dead))
    see(replicas.a, {"L3": ids(45)})
    await replicas.flush()
    assert replicas.a.stats.store_errors >= 1
    assert len(replicas.events[0]) == 1  # still detected, per replica
