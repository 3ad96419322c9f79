"""Grants: time-limited, approved widenings of a subject's access (policy input).

The policy stage asks `active_for(subject, now)` on every request, so the answer
must not cost a Redis round trip. `RedisGrantStore` therefore keeps an in-process
snapshot of the whole grants hash, refreshed when another replica publishes a
change on `GRANTS_CHANNEL` and, as a safety net for lost pub/sub messages, when a
cheap poll of `GRANTS_VERSION` shows a newer version. Every write goes through one
MULTI block: HSET/HDEL the grant, INCR the version, PUBLISH the new version.

Grants only ever *widen* access. If the snapshot cannot be refreshed for longer
than `max_staleness` seconds, `active_for` answers "no grants" (fail closed):
a revoked grant must not live on because Redis went away.

A grant is a JSON object with at least `id`, `subject`, `status` and `expires`
(RFC 3339); `gateway.access` owns its full shape and lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from gateway.settings import Settings
from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.follower import Follower
from gateway.state.keys import (
    GRANTS,
    GRANTS_CHANNEL,
    GRANTS_VERSION,
    REVIEWS,
    REVIEWS_CHANNEL,
    REVIEWS_VERSION,
)

log = logging.getLogger(__name__)

Grant = dict[str, Any]
Mutation = Callable[[Grant | None], Grant | None]


class GrantConflict(Exception):
    """A read-modify-write lost too many races with other writers."""


def parse_instant(value: object) -> datetime | None:
    """An RFC 3339 instant as grants store them; None when it is missing, malformed or
    without a zone (ambiguous, so never taken as a time)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else None


def is_active(grant: Mapping[str, Any], now: datetime) -> bool:
    """Active = fully approved, not revoked, and not yet expired at `now`."""
    if grant.get("status") != "active":
        return False
    until = parse_instant(grant.get("expires"))
    return until is not None and now < until


def in_scope(grants: list[Grant], operation: str, route: str) -> list[Grant]:
    """The grants whose scope covers this request: `scope.operations` (empty: any)
    and `scope.routes`, globs on the route template (empty: any). A grant scoped
    elsewhere is not sent to the policy at all, so it widens nothing here."""
    out = []
    for g in grants:
        scope = g.get("scope") or {}
        ops = scope.get("operations") or []
        routes = scope.get("routes") or []
        if ops and operation not in ops and not _sibling(g, ops, operation):
            continue
        if routes and not any(fnmatchcase(route, str(r)) for r in routes):
            continue
        out.append(g)
    return out


def _sibling(grant: Grant, ops: list[str], operation: str) -> bool:
    """A reveal is a view of one value: grants scoped to `view` hold for it. A view
    decision is sent the caller's `reveal` grants (scoped to `reveal`), which the
    policy reads only to offer reveal handles; they unmask nothing there."""
    if operation == "reveal":
        return "view" in ops
    return operation == "view" and "reveal" in ops and grant.get("type") == "reveal"


class GrantStore(Protocol):
    """What the policy stage and the access API need from a grants store."""

    async def active_for(self, subject_id: str, now: datetime) -> tuple[int, list[Grant]]:
        """(store version, active grants of the subject at `now`), sorted by id."""
        ...

    async def get(self, grant_id: str) -> Grant | None: ...

    async def all(self) -> list[Grant]: ...

    async def update(self, grant_id: str, mutate: Mutation) -> Grant | None:
        """Atomically replace a grant with `mutate(current)` (None deletes it)."""
        ...

    async def version(self) -> int: ...

    async def refresh(self) -> None:
        """Bring the local snapshot up to date with the shared store now."""
        ...

    async def close(self) -> None: ...


def _select(grants: Mapping[str, Grant], subject_id: str, now: datetime) -> list[Grant]:
    found = [g for g in grants.values() if g.get("subject") == subject_id and is_active(g, now)]
    found.sort(key=lambda g: str(g.get("id")))
    return found


class MemoryGrantStore:
    """Single-process twin of RedisGrantStore (demo and unit tests)."""

    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}
        self._version = 0
        self._lock = asyncio.Lock()

    async def active_for(self, subject_id: str, now: datetime) -> tuple[int, list[Grant]]:
        return self._version, [dict(g) for g in _select(self._grants, subject_id, now)]

    async def get(self, grant_id: str) -> Grant | None:
        g = self._grants.get(grant_id)
        return dict(g) if g is not None else None

    async def all(self) -> list[Grant]:
        return [dict(g) for g in sorted(self._grants.values(), key=lambda g: str(g.get("id")))]

    async def update(self, grant_id: str, mutate: Mutation) -> Grant | None:
        async with self._lock:
            current = self._grants.get(grant_id)
            new = mutate(dict(current) if current is not None else None)
            if new is None:
                self._grants.pop(grant_id, None)
            else:
                self._grants[grant_id] = dict(new)
            self._version += 1
            return dict(new) if new is not None else None

    async def version(self) -> int:
        return self._version

    async def refresh(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisGrantStore:
    """Grants shared by all replicas; reads served from a local snapshot."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        poll_interval: float = 0.5,
        max_staleness: float = 30.0,
        max_retries: int = 20,
        keys: tuple[str, str, str] = (GRANTS, GRANTS_VERSION, GRANTS_CHANNEL),
    ) -> None:
        self._redis = client
        self._hash, self._version_key, self._channel = keys
        self._poll_interval = poll_interval
        self._max_staleness = max_staleness
        self._max_retries = max_retries
        self._grants: dict[str, Grant] = {}
        self._version = -1  # -1: never loaded
        self._loaded_at = 0.0
        self._refresh_lock = asyncio.Lock()
        self._follower = Follower(
            client, "grants", keys, self.refresh, lambda: self._version, poll_interval,
            on_confirmed=self._confirmed,
        )  # fmt: skip
        self._owns_client = False

    @classmethod
    @translates_store_errors
    async def open(
        cls,
        client: aioredis.Redis,
        *,
        poll_interval: float = 0.5,
        max_staleness: float = 30.0,
        owns_client: bool = False,
        keys: tuple[str, str, str] = (GRANTS, GRANTS_VERSION, GRANTS_CHANNEL),
    ) -> RedisGrantStore:
        """Load the snapshot and start following changes (`owns_client`: close()
        also closes the Redis client). `keys` (hash, version, channel) lets the
        same store hold other shared records (break-glass reviews)."""
        store = cls(client, poll_interval=poll_interval, max_staleness=max_staleness, keys=keys)
        store._owns_client = owns_client
        try:
            await store.refresh()
        except BaseException:
            if owns_client:
                await client.aclose()
            raise
        store._follower.start()
        return store

    @property
    def loaded_version(self) -> int:
        return self._version

    async def refresh(self) -> None:
        """Reload the snapshot if Redis holds a newer version (or always, first time)."""
        async with self._refresh_lock:
            remote = int(await self._redis.get(self._version_key) or 0)
            if remote == self._version:
                self._loaded_at = time.monotonic()
                return
            version, raw = await self._follower.snapshot(hash_value=True)
            grants: dict[str, Grant] = {}
            for k, v in raw.items():
                try:
                    grants[k.decode()] = orjson.loads(v)
                except orjson.JSONDecodeError:
                    log.exception("grant %r is not valid JSON; ignored (fail closed)", k)
            self._grants = grants
            self._version = version
            self._loaded_at = time.monotonic()

    def _confirmed(self) -> None:
        self._loaded_at = time.monotonic()

    def _fresh(self) -> bool:
        return self._version >= 0 and time.monotonic() - self._loaded_at <= self._max_staleness

    async def active_for(self, subject_id: str, now: datetime) -> tuple[int, list[Grant]]:
        if not self._fresh():
            return self._version, []
        return self._version, [dict(g) for g in _select(self._grants, subject_id, now)]

    async def get(self, grant_id: str) -> Grant | None:
        raw = await self._redis.hget(self._hash, grant_id)
        return orjson.loads(raw) if raw is not None else None

    async def all(self) -> list[Grant]:
        raw = await self._redis.hgetall(self._hash)
        grants = [orjson.loads(v) for v in raw.values()]
        grants.sort(key=lambda g: str(g.get("id")))
        return grants

    async def update(self, grant_id: str, mutate: Mutation) -> Grant | None:
        for _ in range(self._max_retries):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(self._hash)
                    raw = await pipe.hget(self._hash, grant_id)
                    current = orjson.loads(raw) if raw is not None else None
                    new = mutate(current)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if new is None:
                        pipe.hdel(self._hash, grant_id)
                    else:
                        pipe.hset(self._hash, grant_id, orjson.dumps(new))
                    pipe.incr(self._version_key)
                    pipe.publish(self._channel, grant_id)
                    await pipe.execute()
                except WatchError:
                    continue
            await self.refresh()
            return new
        raise GrantConflict(f"grant {grant_id}: too many concurrent writers")

    async def version(self) -> int:
        return int(await self._redis.get(self._version_key) or 0)

    async def close(self) -> None:
        await self._follower.close()
        if self._owns_client:
            await self._redis.aclose()


async def open_grant_store(settings: Settings) -> GrantStore:
    """Redis-backed when `redis.url` is set (raises if unreachable: a gateway must
    not start blind to revoked grants), else the in-memory twin."""
    if not settings.redis.url:
        return MemoryGrantStore()
    return await RedisGrantStore.open(connect(settings.redis.url), owns_client=True)


async def open_review_store(settings: Settings) -> GrantStore:
    """Break-glass review tasks, shared like grants (memory without Redis)."""
    if not settings.redis.url:
        return MemoryGrantStore()
    return await RedisGrantStore.open(
        connect(settings.redis.url),
        owns_client=True,
        keys=(REVIEWS, REVIEWS_VERSION, REVIEWS_CHANNEL),
    )
