"""The detector against the in-memory twin: thresholds, once per window, honeytokens,
actions, and what happens when the queue is full."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.audit.alerts import build_alert
from gateway.core.findings import Finding
from gateway.errors import ConfigError
from gateway.monitor.anomaly import AnomalyDetector
from gateway.settings import Settings
from gateway.state.anomaly import MemoryAnomalyStore

T0 = datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)  # Thursday 18:00:30 in Shanghai
SUBJECT = "u-alice"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _settings(**monitor: Any) -> Settings:
    base: dict[str, Any] = {
        "enabled": True,
        "window_seconds": 3600,
        "distinct_customers": {"L3": 10, "L4": 5},
        "blocked_burst_count": 3,
        "blocked_burst_seconds": 60,
    }
    base.update(monitor)
    return Settings.model_validate({"monitor": base})


class Harness:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.revoked: list[tuple[str, str]] = []
        self.clock = Clock()

    async def revoke(self, subject: str, reason: str) -> None:
        self.revoked.append((subject, reason))

    async def open(self, **monitor: Any) -> AnomalyDetector:
        return await AnomalyDetector.open(
            _settings(**monitor),
            emit=lambda f: self.events.append(build_alert(f)),
            revoke=self.revoke,
            clock=self.clock,
        )

    def kinds(self) -> list[str]:
        return [e["unmapped"]["crm"]["anomaly"]["kind"] for e in self.events]


def ids(n: int, start: int = 0) -> list[str]:
    return [f"C{start + i:06d}" for i in range(n)]


@pytest.fixture
def h() -> Harness:
    return Harness()


def see(
    det: AnomalyDetector,
    level_ids: dict[str, list[str]],
    *,
    blocked: bool = False,
    now: datetime = T0,
    subject: str = SUBJECT,
) -> None:
    det.observe(subject_id=subject, record_ids_by_level=level_ids, blocked=blocked, now=now)


async def test_distinct_customers_alert_once_at_the_threshold(h: Harness) -> None:
    det = await h.open()
    try:
        see(det, {"L4": ids(4)})
        see(det, {"L4": ids(4)})  # the same four again: still four distinct
        await det.flush()
        assert h.events == []
        see(det, {"L4": ids(1, start=4)})
        await det.flush()
        assert h.kinds() == ["distinct_customers"]
        finding = h.events[0]["unmapped"]["crm"]["anomaly"]
        assert (finding["level"], finding["count"], finding["threshold"]) == ("L4", 5, 5)
        see(det, {"L4": ids(20, start=100)})
        await det.flush()
        assert len(h.events) == 1  # once per subject, level and window
    finally:
        await det.close()


async def test_next_window_counts_afresh_and_alerts_again(h: Harness) -> None:
    det = await h.open()
    try:
        see(det, {"L4": ids(5)})
        later = T0 + timedelta(hours=1)
        see(det, {"L4": ids(4)}, now=later)
        await det.flush()
        assert len(h.events) == 1
        see(det, {"L4": ids(1, start=50)}, now=later)
        await det.flush()
        assert len(h.events) == 2
        starts = {e["unmapped"]["crm"]["anomaly"]["window_start"] for e in h.events}
        assert starts == {"2026-11-26T10:00:00.000Z", "2026-11-26T11:00:00.000Z"}
    finally:
        await det.close()


async def test_levels_and_subjects_are_counted_apart(h: Harness) -> None:
    det = await h.open()
    try:
        see(det, {"L4": ids(3), "L3": ids(9), "L2": ids(100)})
        see(det, {"L4": ids(3, start=10)}, subject="u-bob")
        await det.flush()
        assert h.events == []  # L2 is not watched; L3 9 < 10; L4 3 per subject < 5
        see(det, {"L3": ids(1, start=9)})
        await det.flush()
        assert [e["unmapped"]["crm"]["anomaly"]["level"] for e in h.events] == ["L3"]
    finally:
        await det.close()


async def test_blocked_burst_within_one_bucket(h: Harness) -> None:
    det = await h.open()
    try:
        see(det, {}, blocked=True)
        see(det, {}, blocked=True)
        see(det, {}, blocked=False)
        see(det, {}, blocked=True, now=T0 + timedelta(seconds=60))  # next bucket
        await det.flush()
        assert h.events == []
        see(det, {}, blocked=True)
        await det.flush()
        assert h.kinds() == ["blocked_burst"]
        finding = h.events[0]["unmapped"]["crm"]["anomaly"]
        assert finding["window_seconds"] == 60
        assert finding["count"] == 3
        see(det, {}, blocked=True)
        await det.flush()
        assert len(h.events) == 1
    finally:
        await det.close()


@pytest.mark.parametrize(
    ("start", "end", "days", "local_hour", "weekday_offset", "outside"),
    [
        (9, 18, ("mon", "tue", "wed", "thu", "fri"), 10, 0, False),
        (9, 18, ("mon", "tue", "wed", "thu", "fri"), 18, 0, True),
        (9, 18, ("mon", "tue", "wed", "thu", "fri"), 3, 0, True),
        (9, 18, ("mon", "tue", "wed", "thu", "fri"), 10, 2, True),  # Saturday
        (22, 6, ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 23, 0, False),
        (22, 6, ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 5, 0, False),
        (22, 6, ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 12, 0, True),
    ],
)
async def test_usual_hours(
    h: Harness,
    start: int,
    end: int,
    days: tuple[str, ...],
    local_hour: int,
    weekday_offset: int,
    outside: bool,
) -> None:
    det = await h.open(usual_hours_start=start, usual_hours_end=end, usual_days=days)
    # 2026-11-26 is a Thursday; Shanghai is UTC+8.
    at = datetime(2026, 11, 26, local_hour, 15, tzinfo=UTC) - timedelta(hours=8)
    at += timedelta(days=weekday_offset)
    try:
        see(det, {}, now=at)
        see(det, {}, now=at + timedelta(minutes=1))
        await det.flush()
        assert h.kinds() == (["off_hours"] if outside else [])
    finally:
        await det.close()


async def test_off_hours_is_off_by_default(h: Harness) -> None:
    det = await h.open()
    try:
        see(det, {}, now=datetime(2026, 11, 26, 19, 0, tzinfo=UTC))  # 03:00 in Shanghai
        await det.flush()
        assert h.events == []
    finally:
        await det.close()


async def test_honeytoken_alerts_immediately_on_every_access(h: Harness) -> None:
    det = await h.open(honeytokens=["C999901", "C999902"])
    try:
        see(det, {"L1": ["C000001", "C999901"], "L4": ["C999901"]})
        # Synchronous: no await between observe and the alert.
        assert h.kinds() == ["honeytoken"]
        alert = h.events[0]
        assert alert["severity_id"] == 5
        assert alert["is_alert"] is True
        assert alert["unmapped"]["crm"]["record_ids"] == ["C999901"]
        assert "C000001" not in str(alert)
        see(det, {"L2": ["C999902"]})
        assert len(h.events) == 2
        assert det.stats.honeytoken_hits == 2
        assert det.check_honeytokens(["C000009", "C999902", "C999902"]) == ["C999902"]
        assert h.revoked == []
    finally:
        await det.close()


async def test_masked_decoy_under_star_still_alerts_and_star_is_not_counted(h: Harness) -> None:
    det = await h.open(honeytokens=["C999901"], distinct_customers={"L4": 2})
    try:
        see(det, {"*": ["C999901", *ids(10)]})
        await det.flush()
        assert h.kinds() == ["honeytoken"]
    finally:
        await det.close()


async def test_honeytoken_revoke(h: Harness) -> None:
    det = await h.open(honeytokens=["C999901"], honeytoken_action="revoke")
    see(det, {"L1": ["C999901"]})
    await det.close()  # waits for the pending revocation
    assert [s for s, _ in h.revoked] == [SUBJECT]
    assert "honeytoken" in h.revoked[0][1]


async def test_throttle_action_sets_a_local_flag_that_expires(h: Harness) -> None:
    det = await h.open(action="throttle", throttle_seconds=900)
    try:
        assert not det.is_throttled(SUBJECT)
        see(det, {"L4": ids(5)})
        await det.flush()
        assert det.is_throttled(SUBJECT)
        assert not det.is_throttled("u-bob")
        assert h.events[0]["unmapped"]["crm"]["anomaly"]["action"] == "throttle"
        await det.refresh_throttled()
        assert det.is_throttled(SUBJECT)
        h.clock.now += 901
        assert not det.is_throttled(SUBJECT)
        await det.refresh_throttled()
        assert not det.is_throttled(SUBJECT)
    finally:
        await det.close()


async def test_revoke_action_calls_the_revoker_once(h: Harness) -> None:
    det = await h.open(action="revoke")
    try:
        see(det, {"L4": ids(6)})
        see(det, {"L4": ids(6, start=10)})
        await det.flush()
        assert [s for s, _ in h.revoked] == [SUBJECT]
        assert "distinct_customers" in h.revoked[0][1]
    finally:
        await det.close()


async def test_off_hours_never_triggers_the_action(h: Harness) -> None:
    det = await h.open(action="revoke", usual_hours_start=9, usual_hours_end=10)
    try:
        see(det, {}, now=T0)  # 18:00 local
        await det.flush()
        assert h.kinds() == ["off_hours"]
        assert h.revoked == []
    finally:
        await det.close()


async def test_full_queue_drops_and_counts(h: Harness) -> None:
    det = await h.open(queue_size=2)
    try:
        for i in range(5):  # no await: the batch task cannot run in between
            see(det, {"L4": [f"C{i:06d}"]})
        assert det.stats.dropped == 3
        await det.flush()
        assert det.stats.observed == 5
        assert h.events == []  # only 2 distinct counted, under the threshold of 5
    finally:
        await det.close()


async def test_disabled_detector_does_nothing(h: Harness) -> None:
    det = await h.open(enabled=False, honeytokens=["C999901"])
    see(det, {"L4": [*ids(50), "C999901"]}, blocked=True)
    await det.close()
    assert h.events == []
    assert det.stats.observed == 0


async def test_revoke_without_a_revoker_is_refused() -> None:
    with pytest.raises(ConfigError):
        await AnomalyDetector.open(_settings(action="revoke"), emit=lambda e: None, revoke=None)


async def test_a_failing_emit_never_reaches_the_request(h: Harness) -> None:
    def boom(finding: Finding) -> None:
        raise RuntimeError("sink down")

    emit: Callable[[Finding], None] = boom
    det = await AnomalyDetector.open(_settings(honeytokens=["C999901"]), emit=emit)
    try:
        see(det, {"L4": ["C999901", *ids(5)]})
        await det.flush()
        assert det.stats.action_errors == 2
        assert det.stats.alerts == 0
    finally:
        await det.close()


async def test_observe_after_close_is_ignored(h: Harness) -> None:
    det = await h.open()
    await det.close()
    see(det, {"L4": ids(10)})
    assert det.stats.observed == 0


class CountingStore(MemoryAnomalyStore):
    """The memory twin, counting claim round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def claim(self, kind: str, subject: str, bucket: int, ttl: int) -> bool:
        self.claims += 1
        return await super().claim(kind, subject, bucket, ttl)


async def test_a_decided_claim_is_not_asked_again(h: Harness) -> None:
    store = CountingStore()
    det = await AnomalyDetector.open(
        _settings(), emit=lambda f: h.events.append(build_alert(f)), store=store
    )
    try:
        for start in range(0, 50, 5):
            see(det, {"L4": ids(5, start=start)})
            await det.flush()
        assert len(h.events) == 1
        assert store.claims == 1
    finally:
        await det.close()


async def test_refusals_while_throttled_are_not_a_new_burst(h: Harness) -> None:
    det = await h.open(action="throttle")
    try:
        for _ in range(3):
            see(det, {}, blocked=True)
        await det.flush()
        assert det.is_throttled(SUBJECT)
        for _ in range(10):  # the guard's 429s for the throttled subject
            see(det, {}, blocked=True, now=T0 + timedelta(seconds=90))
        await det.flush()
        assert h.kinds() == ["blocked_burst"]
    finally:
        await det.close()


async def test_filter_probes_alert_once_at_the_threshold(h: Harness) -> None:
    det = await h.open(filter_probes=3)
    try:
        det.observe_probe(subject_id=SUBJECT, digests=["d1", "d2"], now=T0)
        det.observe_probe(subject_id=SUBJECT, digests=["d2"], now=T0)  # same value again
        await det.flush()
        assert h.kinds() == []
        det.observe_probe(subject_id=SUBJECT, digests=["d3"], now=T0)
        det.observe_probe(subject_id=SUBJECT, digests=["d4"], now=T0)
        await det.flush()
        assert h.kinds() == ["filter_probe"]
        assert "3 distinct protected values" in h.events[0]["message"] or (
            "4 distinct protected values" in h.events[0]["message"]
        )
        det.observe_probe(subject_id="", digests=["d5"], now=T0)  # ignored
        det.observe_probe(subject_id=SUBJECT, digests=[], now=T0)  # ignored
    finally:
        await det.close()
