"""Rate limits shared by every gateway replica: a sliding-window log per key.

Why a log and not GCRA or a fixed window: the guarantee we test and promise is
exact, "at most `limit` requests in any `period` seconds", for a handful of
requests per subject per minute; a log (a sorted set of timestamps) gives that
with no boundary bursts. The check-and-add is one Lua script, so two replicas
cannot both take the last slot, and the clock is Redis's own `TIME`, so replica
clocks do not matter.

If Redis fails mid-request the limiter degrades to a per-process log rather
than refusing every call: limits then hold per replica until Redis is back.
(Revocations and grants, which protect data, fail closed elsewhere; a rate
limit is an abuse brake.)
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.keys import ratelimit as ratelimit_key

log = logging.getLogger(__name__)

# Both scripts: KEYS[1] sorted set; ARGV: limit, period in microseconds (and for a
# hit, the unique member). They return {allowed (0/1), remaining, retry_after in
# microseconds}. The window is read the same way by both: Redis's clock, entries
# older than the period trimmed, then counted.
_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
"""
_FULL = """
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + period - now}
"""

# Count one request unless the window is full.
_SLIDING_LOG = (
    _WINDOW
    + """
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000))
  return {1, limit - count - 1, 0}
end
"""
    + _FULL
)

# Only reads: would one more request be allowed?
_PEEK = (
    _WINDOW
    + """
if count < limit then
  return {1, limit - count, 0}
end
"""
    + _FULL
)


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after: float  # seconds until a slot frees up; 0 when allowed


class RateLimiter(Protocol):
    async def hit(self, scope: str, ident: str, *, limit: int, period: float) -> RateDecision:
        """Count one request against (scope, ident) unless the window is full."""
        ...

    async def peek(self, scope: str, ident: str, *, limit: int, period: float) -> RateDecision:
        """Would `hit` be allowed now? Counts nothing."""
        ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    """The same sliding-window log in process memory (single-process mode)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._logs: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    async def hit(self, scope: str, ident: str, *, limit: int, period: float) -> RateDecision:
        return self.hit_now(scope, ident, limit=limit, period=period, now=time.monotonic())

    def hit_now(
        self, scope: str, ident: str, *, limit: int, period: float, now: float
    ) -> RateDecision:
        key = ratelimit_key(scope, ident)
        entries = self._logs.get(key)
        if entries is None:
            if len(self._logs) >= self._max_keys:
                self._sweep(now, period)
            entries = self._logs[key] = deque()
        while entries and entries[0] <= now - period:
            entries.popleft()
        if len(entries) < limit:
            entries.append(now)
            return RateDecision(True, limit - len(entries), 0.0)
        return RateDecision(False, 0, max(entries[0] + period - now, 0.0))

    async def peek(self, scope: str, ident: str, *, limit: int, period: float) -> RateDecision:
        return self.peek_now(scope, ident, limit=limit, period=period, now=time.monotonic())

    def peek_now(
        self, scope: str, ident: str, *, limit: int, period: float, now: float
    ) -> RateDecision:
        entries = self._logs.get(ratelimit_key(scope, ident))
        live = [t for t in entries or () if t > now - period]
        if len(live) < limit:
            return RateDecision(True, limit - len(live), 0.0)
        return RateDecision(False, 0, max(live[0] + period - now, 0.0))

    def _sweep(self, now: float, period: float) -> None:
        """Forget keys whose newest entry is older than the current period."""
        for key in [k for k, d in self._logs.items() if not d or d[-1] <= now - period]:
            del self._logs[key]

    async def close(self) -> None:
        self._logs.clear()


class RedisRateLimiter:
    """The shared limiter; one EVALSHA round trip per counted request."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._script = client.register_script(_SLIDING_LOG)
        self._peek = client.register_script(_PEEK)
        self._fallback = MemoryRateLimiter()

    async def hit(self, scope: str, ident: str, *, limit: int, period: float) -> RateDecision:
        member = secrets.token_hex(8)
        try:
            raw = await self._script(
                keys=[ratelimit_key(scope, ident)],
                args=[limit, int(period * 1_000_000), member],
            )
        except RedisError as exc:
            log.warning("rate limiter: Redis unavailable, counting per process: %s", exc)
            return await self._fallback.hit(scope, ident, limit=limit, period=period)
        allowed, remaining, retry_us = (int(x) for x in raw)
        return RateDecision(bool(allowed), remaining, retry_us / 1_000_000)

    async def peek(self, scope: str, ident: str, *, limit: int, period: float) -> RateDecision:
        try:
            raw = await self._peek(
                keys=[ratelimit_key(scope, ident)], args=[limit, int(period * 1_000_000)]
            )
        except RedisError as exc:
            log.warning("rate limiter: Redis unavailable, counting per process: %s", exc)
            return await self._fallback.peek(scope, ident, limit=limit, period=period)
        allowed, remaining, retry_us = (int(x) for x in raw)
        return RateDecision(bool(allowed), remaining, retry_us / 1_000_000)

    async def close(self) -> None:
        await self._redis.aclose()


@translates_store_errors
async def open_ratelimiter(url: str | None) -> RateLimiter:
    """Redis-backed when `url` is set (and reachable), in-memory otherwise."""
    if not url:
        return MemoryRateLimiter()
    client = connect(url)
    await client.ping()
    return RedisRateLimiter(client)
