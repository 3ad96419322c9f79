"""Real-time anomaly detection across replicas, fed once per finished request.

The request path only calls `observe()`: a honeytoken set lookup (alerting at
once on a hit) and an O(1) `put_nowait` on a bounded queue. A background task
takes the queue in batches and adds each batch to the shared counters in one
Redis round trip (`gateway.state.anomaly`); the totals that come back are
compared with the thresholds in `monitor.*`. Because every replica adds to the
same keys, a subject spreading requests over replicas is counted as one, and
because each alert is claimed with `SET NX` per (kind, subject, window), it is
raised once however many replicas see the breach.

Nothing here can fail a request: a full queue drops the observation and counts
it, a Redis error moves the batch to the in-process twin (limits then hold per
replica until Redis is back), and a failing action is logged and counted. The
alert is emitted before the action runs, so the SIEM hears about a breach even
if the revocation does not go through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from gateway.core.findings import AlertKind, Finding
from gateway.core.report import ReportSummary
from gateway.errors import ConfigError
from gateway.monitor.honeytokens import Honeytokens
from gateway.settings import MonitorSettings, Settings
from gateway.state.anomaly import (
    AnomalyStore,
    Batch,
    BurstKey,
    CustomerKey,
    MemoryAnomalyStore,
    RedisAnomalyStore,
)
from gateway.state.errors import StoreUnavailable

log = logging.getLogger(__name__)

# Where findings go: app.py renders them as alert events (gateway.audit.alerts) and emits them.
Emit = Callable[[Finding], None]
Revoke = Callable[[str, str], Awaitable[None]]
T = TypeVar("T")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOSE_TIMEOUT = 2.0
_DECIDED_MAX = 100_000
# The pseudo-level under which distinct probed values are counted (see observe_probe).
PROBE = "filter_probe"


@dataclass(slots=True)
class DetectorStats:
    observed: int = 0
    dropped: int = 0  # queue full
    batches: int = 0
    alerts: int = 0
    honeytoken_hits: int = 0
    store_errors: int = 0  # Redis failures (batch handled in memory instead)
    action_errors: int = 0  # emit, throttle or revoke failures


@dataclass(frozen=True, slots=True)
class _Observation:
    subject_id: str
    ids_by_level: Mapping[str, Sequence[str]]
    blocked: bool
    at: datetime


class AnomalyDetector:
    """Use `await AnomalyDetector.open(settings, emit=..., revoke=...)`; `close()` at shutdown."""

    def __init__(
        self,
        settings: MonitorSettings,
        store: AnomalyStore,
        *,
        emit: Emit,
        revoke: Revoke | None = None,
        fallback: AnomalyStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        wants_revoke = "revoke" in (settings.action, settings.honeytoken_action)
        if settings.enabled and wants_revoke and revoke is None:
            raise ConfigError("monitor: an action is revoke but no revoker is wired")
        self._s = settings
        self._store = store
        self._fallback = fallback
        self._emit = emit
        self._revoke = revoke
        self._clock = clock
        self._honeytokens = Honeytokens(settings.honeytokens)
        self._zone = ZoneInfo(settings.timezone)
        self._hours_active = (settings.usual_hours_start, settings.usual_hours_end) != (0, 24) or (
            set(settings.usual_days) != set(_DAYS)
        )
        self._queue: asyncio.Queue[_Observation] = asyncio.Queue(settings.queue_size)
        self._throttled: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._actions: set[asyncio.Task[None]] = set()
        self._decided: set[tuple[str, str, int]] = set()  # claims this replica has tried
        self._closed = False
        self.stats = DetectorStats()

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        emit: Emit,
        revoke: Revoke | None = None,
        store: AnomalyStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AnomalyDetector:
        """Redis-backed when `redis.url` is set (with a memory fallback), else in memory."""
        fallback: AnomalyStore | None = None
        if store is None:
            store = MemoryAnomalyStore(clock)
            if settings.redis.url and settings.monitor.enabled:
                store, fallback = RedisAnomalyStore.open(settings.redis.url), store
        self = cls(
            settings.monitor, store, emit=emit, revoke=revoke, fallback=fallback, clock=clock
        )
        if settings.monitor.enabled:
            await self.refresh_throttled()
            self._tasks.append(asyncio.create_task(self._run(), name="anomaly-batches"))
            self._tasks.append(asyncio.create_task(self._poll(), name="anomaly-throttle-poll"))
        return self

    # -- the request path -----------------------------------------------------

    def observe(
        self,
        *,
        subject_id: str,
        record_ids_by_level: Mapping[str, Sequence[str]],
        blocked: bool,
        now: datetime,
    ) -> None:
        """Count one finished request. Never raises, never waits.

        `record_ids_by_level` maps a level to the customers whose fields of that level
        the subject saw in clear; the sequences are read later, so do not mutate them.
        """
        if not self._s.enabled or self._closed or not subject_id:
            return
        try:
            self.stats.observed += 1
            decoys = self._honeytokens.hits_by_level(record_ids_by_level)
            if decoys:
                self._honeytoken(subject_id, decoys, now)
            watched = self._s.distinct_customers
            ids = {lv: v for lv, v in record_ids_by_level.items() if lv in watched and v}
            # Refusals of a throttled subject are the throttle working, not a new burst.
            blocked = blocked and not self.is_throttled(subject_id)
            if not ids and not blocked and not self._hours_active:
                return
            self._queue.put_nowait(_Observation(subject_id, ids, blocked, now))
        except asyncio.QueueFull:
            self.stats.dropped += 1
        except Exception:
            self.stats.action_errors += 1
            log.exception("anomaly_observe_failed")

    def observe_probe(self, *, subject_id: str, digests: Sequence[str], now: datetime) -> None:
        """Count the protected values a request filtered or searched by (keyed digests,
        never the values), refused or allowed as lookups. Never raises, never waits."""
        if not self._s.enabled or self._closed or not subject_id or not digests:
            return
        try:
            self._queue.put_nowait(_Observation(subject_id, {PROBE: list(digests)}, False, now))
        except asyncio.QueueFull:
            self.stats.dropped += 1

    def is_throttled(self, subject_id: str) -> bool:
        """A local lookup, refreshed from Redis every `refresh_seconds`."""
        until = self._throttled.get(subject_id)
        return until is not None and until > self._clock()

    def check_honeytokens(self, record_ids: Iterable[str]) -> list[str]:
        """The decoys among `record_ids` (to flag the access event; `observe` alerts)."""
        return self._honeytokens.hits(record_ids)

    # -- honeytokens -------------------------------------------------------------

    def _honeytoken(self, subject_id: str, decoys: list[str], now: datetime) -> None:
        self.stats.honeytoken_hits += 1
        at = _epoch(now)
        finding = Finding(
            kind="honeytoken",
            subject_id=subject_id,
            at=at,
            window_start=at,
            window_seconds=0,
            count=len(decoys),
            threshold=1,
            action=self._s.honeytoken_action,
            decoy_ids=tuple(decoys),
        )
        self._raise_now(finding)
        if finding.action == "revoke":
            task = asyncio.get_running_loop().create_task(self._act(finding))
            self._actions.add(task)
            task.add_done_callback(self._actions.discard)

    # -- the background side -------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._s.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._process(batch)
            except Exception:
                self.stats.action_errors += 1
                log.exception("anomaly_batch_failed")
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every observation queued so far is counted (tests, shutdown)."""
        await self._queue.join()

    async def _process(self, batch: Sequence[_Observation]) -> None:
        """Add one batch to the shared counters and raise what it tripped."""
        s = self._s
        self.stats.batches += 1
        customers: dict[CustomerKey, set[str]] = {}
        blocked: dict[BurstKey, int] = {}
        off_hours: dict[tuple[str, int], float] = {}
        last: dict[tuple[str, int], float] = {}  # (subject, window bucket) -> latest
        last_blocked: dict[BurstKey, float] = {}
        for ob in batch:
            ts = _epoch(ob.at)
            wb = int(ts // s.window_seconds)
            for level, ids in ob.ids_by_level.items():
                customers.setdefault((ob.subject_id, level, wb), set()).update(ids)
            last[(ob.subject_id, wb)] = ts
            if ob.blocked:
                bk = (ob.subject_id, int(ts // s.blocked_burst_seconds))
                blocked[bk] = blocked.get(bk, 0) + 1
                last_blocked[bk] = ts
            if self._hours_active and not self._inside_hours(ob.at):
                off_hours.setdefault((ob.subject_id, wb), ts)
        tally = await self._call(
            lambda st: st.tally(
                Batch(customers, blocked, s.window_seconds, s.blocked_burst_seconds)
            )
        )
        for (subject, level, wb), n in tally.customers.items():
            if level == PROBE:
                if n >= s.filter_probes:
                    at = last[(subject, wb)]
                    await self._breach("filter_probe", subject, wb, at, n, s.filter_probes)
                continue
            limit = s.distinct_customers[level]
            if n >= limit:
                at = last[(subject, wb)]
                await self._breach("distinct_customers", subject, wb, at, n, limit, level)
        for (subject, bb), n in tally.blocked.items():
            if n >= s.blocked_burst_count:
                at = last_blocked[(subject, bb)]
                await self._breach("blocked_burst", subject, bb, at, n, s.blocked_burst_count)
        for (subject, wb), at in off_hours.items():
            await self._breach("off_hours", subject, wb, at, 1, 1)

    async def _breach(
        self,
        kind: AlertKind,
        subject: str,
        bucket: int,
        at: float,
        count: int,
        threshold: int,
        level: str | None = None,
    ) -> None:
        """Claim (kind, subject, bucket) on every replica's behalf; the winner alerts."""
        s = self._s
        seconds = s.blocked_burst_seconds if kind == "blocked_burst" else s.window_seconds
        claim_kind = f"{kind}.{level}" if level else kind
        decided = (claim_kind, subject, bucket)
        if decided in self._decided:  # this replica already won or lost it: no round trip
            return
        if len(self._decided) >= _DECIDED_MAX:
            self._decided.clear()
        self._decided.add(decided)
        if not await self._call(lambda st: st.claim(claim_kind, subject, bucket, 2 * seconds)):
            return
        finding = Finding(
            kind=kind,
            subject_id=subject,
            at=at,
            window_start=float(bucket * seconds),
            window_seconds=seconds,
            count=count,
            threshold=threshold,
            action="alert" if kind == "off_hours" else s.action,
            level=level,
        )
        self._raise_now(finding)
        await self._act(finding)

    def _raise_now(self, finding: Finding) -> None:
        try:
            self._emit(finding)
            self.stats.alerts += 1
        except Exception:
            self.stats.action_errors += 1
            log.exception("anomaly_alert_emit_failed")
        log.warning("anomaly_alert kind=%s subject=%s", finding.kind, finding.subject_id)

    async def _act(self, finding: Finding) -> None:
        subject = finding.subject_id
        try:
            if finding.action == "throttle":
                until = self._clock() + self._s.throttle_seconds
                self._throttled[subject] = max(until, self._throttled.get(subject, 0.0))
                await self._call(lambda st: st.throttle(subject, until))
            elif finding.action == "revoke" and self._revoke is not None:
                await self._revoke(subject, f"anomaly detector: {finding.kind} ({finding.uid})")
        except Exception:
            self.stats.action_errors += 1
            log.exception("anomaly_action_failed action=%s", finding.action)

    def _inside_hours(self, at: datetime) -> bool:
        local = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(self._zone)
        if _DAYS[local.weekday()] not in self._s.usual_days:
            return False
        start, end, hour = self._s.usual_hours_start, self._s.usual_hours_end, local.hour
        return start <= hour < end if start < end else (hour >= start or hour < end)

    async def refresh_throttled(self) -> None:
        """Reload the throttle list (shared by every replica) into the local cache."""
        now = self._clock()
        fresh = await self._call(lambda st: st.throttled(now))
        if self._fallback is not None:
            fresh.update(await self._fallback.throttled(now))
        self._throttled = fresh

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._s.refresh_seconds)
            try:
                await self.refresh_throttled()
            except Exception:
                log.exception("anomaly_throttle_refresh_failed")

    async def _call(self, op: Callable[[AnomalyStore], Awaitable[T]]) -> T:
        try:
            return await op(self._store)
        except StoreUnavailable:
            if self._fallback is None:
                raise
            self.stats.store_errors += 1
            log.warning("anomaly_store_unavailable: using this process's counters")
            return await op(self._fallback)

    async def close(self) -> None:
        """Finish the queued observations (bounded wait), then stop and close the store."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), _CLOSE_TIMEOUT)
        if self._actions:
            await asyncio.wait(set(self._actions), timeout=_CLOSE_TIMEOUT)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._store.close()
        if self._fallback is not None:
            await self._fallback.close()


def ids_by_level(report: ReportSummary | None) -> dict[str, list[str]]:
    """`observe`'s `record_ids_by_level` from the enforcer's `ReportSummary`.

    Key `"*"` holds every record id of the response (a decoy counts even when all
    of its fields were masked); the detector counts only the levels it watches.
    With `records.clear_ids_by_level` (ids per level shown in clear) the levels are
    exact; without it, every id of the response is counted at each level that some
    record showed in clear: exact for one-record responses, an over-count for lists
    that mix clear and masked records (it errs towards alerting).
    """
    if report is None:
        return {}
    records = report.records
    every = list(records.ids)
    out: dict[str, list[str]] = {"*": every} if every else {}
    if records.clear_ids_by_level:
        for level, level_ids in records.clear_ids_by_level.items():
            if level_ids:
                out[level] = list(level_ids)
        return out
    if every:
        for level, n in records.clear_by_level.items():
            if n > 0:
                out[level] = every
    return out


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
