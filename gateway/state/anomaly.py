"""Anomaly counters shared by every replica: distinct customers, blocked bursts,
once-per-window alert claims and the throttle list.

Why these structures:
- distinct customers per (subject, level, window bucket) are a HyperLogLog
  (PFADD + PFCOUNT): 12 KB at most per key whatever the volume, about 1% error,
  and the union across replicas is free because every replica adds to the same key;
- blocked requests per (subject, burst bucket) are a plain counter (INCRBY);
- "alert once" is `SET NX EX` on (kind, subject, bucket): when two replicas see
  the same breach in the same batch round, exactly one of them wins the claim;
- throttled subjects are one sorted set scored by the time the throttle ends, so a
  replica refreshes its local copy with a single ZRANGEBYSCORE.

A batch is one pipeline (one round trip) whatever its size. Every key expires
(twice its window), so an idle subject leaves nothing behind.

`MemoryAnomalyStore` is the same interface in process memory, with exact sets:
the single-process mode and the fallback while Redis is unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis

from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.keys import ANOMALY_THROTTLED
from gateway.state.keys import anomaly as anomaly_key

CustomerKey = tuple[str, str, int]  # (subject, level, window bucket)
BurstKey = tuple[str, int]  # (subject, burst bucket)


@dataclass(frozen=True, slots=True)
class Batch:
    """What one flush adds: record ids per customer key, blocked counts per burst key,
    and the window lengths that bound how long the counters live."""

    customers: Mapping[CustomerKey, Collection[str]]
    blocked: Mapping[BurstKey, int]
    window_seconds: int
    burst_seconds: int


@dataclass(slots=True)
class Tally:
    """Totals after a batch was added, for the keys the batch touched."""

    customers: dict[CustomerKey, int] = field(default_factory=dict)
    blocked: dict[BurstKey, int] = field(default_factory=dict)


class AnomalyStore(Protocol):
    async def tally(self, batch: Batch) -> Tally:
        """Add record ids and blocked counts; return the totals of the touched keys."""
        ...

    async def claim(self, kind: str, subject: str, bucket: int, ttl: int) -> bool:
        """True for the first caller (on any replica) for this (kind, subject, bucket)."""
        ...

    async def throttle(self, subject: str, until: float) -> None: ...

    async def throttled(self, now: float) -> dict[str, float]:
        """Subjects throttled beyond `now` (epoch seconds) -> until."""
        ...

    async def close(self) -> None: ...


def _customers_key(subject: str, level: str, bucket: int) -> str:
    return anomaly_key(f"customers.{level}", subject, str(bucket))


def _blocked_key(subject: str, bucket: int) -> str:
    return anomaly_key("blocked", subject, str(bucket))


def _claim_key(kind: str, subject: str, bucket: int) -> str:
    return anomaly_key(f"alert.{kind}", subject, str(bucket))


class RedisAnomalyStore:
    """Use `RedisAnomalyStore.open(url)`; errors reach the caller as StoreUnavailable,
    which falls back to memory."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    @classmethod
    def open(cls, url: str) -> RedisAnomalyStore:
        return cls(connect(url))

    @translates_store_errors
    async def tally(self, batch: Batch) -> Tally:
        customers, blocked = batch.customers, batch.blocked
        ckeys = [k for k, ids in customers.items() if ids]
        bkeys = [k for k, n in blocked.items() if n > 0]
        if not ckeys and not bkeys:
            return Tally()
        pipe = self._redis.pipeline(transaction=False)
        for subject, level, bucket in ckeys:
            key = _customers_key(subject, level, bucket)
            pipe.pfadd(key, *customers[(subject, level, bucket)])
            pipe.expire(key, 2 * batch.window_seconds)
            pipe.pfcount(key)
        for subject, bucket in bkeys:
            key = _blocked_key(subject, bucket)
            pipe.incrby(key, blocked[(subject, bucket)])
            pipe.expire(key, 2 * batch.burst_seconds)
        results = await pipe.execute()
        out = Tally()
        for i, ck in enumerate(ckeys):
            out.customers[ck] = int(results[3 * i + 2])
        base = 3 * len(ckeys)
        for i, bk in enumerate(bkeys):
            out.blocked[bk] = int(results[base + 2 * i])
        return out

    @translates_store_errors
    async def claim(self, kind: str, subject: str, bucket: int, ttl: int) -> bool:
        won = await self._redis.set(_claim_key(kind, subject, bucket), b"1", nx=True, ex=ttl)
        return bool(won)

    @translates_store_errors
    async def throttle(self, subject: str, until: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(ANOMALY_THROTTLED, {subject: until})
        pipe.zremrangebyscore(ANOMALY_THROTTLED, "-inf", time.time())
        await pipe.execute()

    @translates_store_errors
    async def throttled(self, now: float) -> dict[str, float]:
        rows = await self._redis.zrangebyscore(
            ANOMALY_THROTTLED, f"({now}", "+inf", withscores=True
        )
        out: dict[str, float] = {}
        for row in rows:
            member, score = row[0], row[1]
            out[member.decode() if isinstance(member, bytes) else str(member)] = float(score)
        return out

    async def close(self) -> None:
        await self._redis.aclose()


class MemoryAnomalyStore:
    """The same counters in this process, exact (sets instead of HyperLogLogs).

    Old buckets are dropped as newer ones arrive, so memory stays bounded by the
    subjects active in the current and previous window.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._customers: dict[CustomerKey, set[str]] = {}
        self._blocked: dict[BurstKey, int] = {}
        self._claims: dict[tuple[str, str, int], float] = {}
        self._throttled: dict[str, float] = {}
        self._latest_window = 0
        self._latest_burst = 0

    async def tally(self, batch: Batch) -> Tally:
        out = Tally()
        before = (self._latest_window, self._latest_burst)
        for ck, ids in batch.customers.items():
            if ids:
                seen = self._customers.setdefault(ck, set())
                seen.update(ids)
                out.customers[ck] = len(seen)
                self._latest_window = max(self._latest_window, ck[2])
        for bk, n in batch.blocked.items():
            if n > 0:
                total = self._blocked.get(bk, 0) + n
                self._blocked[bk] = total
                out.blocked[bk] = total
                self._latest_burst = max(self._latest_burst, bk[1])
        if (self._latest_window, self._latest_burst) != before:
            self._prune()
        return out

    def _prune(self) -> None:
        oldest_window, oldest_burst = self._latest_window - 1, self._latest_burst - 1
        for ck in [k for k in self._customers if k[2] < oldest_window]:
            del self._customers[ck]
        for bk in [k for k in self._blocked if k[1] < oldest_burst]:
            del self._blocked[bk]

    async def claim(self, kind: str, subject: str, bucket: int, ttl: int) -> bool:
        now = self._clock()
        if len(self._claims) > 10_000:
            self._claims = {k: t for k, t in self._claims.items() if t > now}
        key = (kind, subject, bucket)
        expires = self._claims.get(key)
        if expires is not None and expires > now:
            return False
        self._claims[key] = now + ttl
        return True

    async def throttle(self, subject: str, until: float) -> None:
        self._throttled[subject] = max(until, self._throttled.get(subject, 0.0))

    async def throttled(self, now: float) -> dict[str, float]:
        self._throttled = {s: t for s, t in self._throttled.items() if t > now}
        return dict(self._throttled)

    async def close(self) -> None:
        self._customers.clear()
        self._blocked.clear()
