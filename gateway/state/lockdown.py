"""The lockdown switch (应急预案), seen by every replica within a second.

One JSON document in Redis (present = lockdown on: the profile, who, when, why),
a version counter and a change channel, written by one Lua script so a version
is never published before its document is visible. Each replica keeps the
document in memory (the hot path reads a field) and reloads it on a pub/sub
message or, when messages are lost, on a poll of the version every
`poll_interval` seconds. If the version cannot be confirmed for `max_staleness`
seconds the replica assumes lockdown is ON (fail closed: a replica cut off
from Redis must not keep serving what the security team switched off).

Without Redis the switch lives in this process (single-process demo).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.keys import LOCKDOWN, LOCKDOWN_CHANNEL, LOCKDOWN_VERSION

log = logging.getLogger(__name__)

# KEYS: document, version, channel. ARGV: op ("set" | "del"), json document.
_CHANGE = """
if ARGV[1] == 'set' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], v)
return v
"""

Document = dict[str, Any]
STALE_PROFILE: Document = {"profile": "stale", "reason": "lockdown state unconfirmed (Redis)"}


class LockdownState:
    """Use `await LockdownState.open(url)`; `close()` when done."""

    def __init__(
        self, client: aioredis.Redis | None, poll_interval: float, max_staleness: float
    ) -> None:
        self._redis = client
        self._poll_interval = poll_interval
        self._max_staleness = max_staleness
        self._document: Document | None = None
        self._version = 0
        self._synced_at = time.monotonic()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._script = client.register_script(_CHANGE) if client is not None else None

    @classmethod
    @translates_store_errors
    async def open(
        cls, url: str | None, *, poll_interval: float = 0.5, max_staleness: float = 30.0
    ) -> LockdownState:
        if not url:
            return cls(None, poll_interval, max_staleness)
        self = cls(connect(url), poll_interval, max_staleness)
        try:
            await self._reload()
        except BaseException:
            await self.close()
            raise
        self._tasks.append(asyncio.create_task(self._subscribe(), name="lockdown-sub"))
        self._tasks.append(asyncio.create_task(self._poll(), name="lockdown-poll"))
        return self

    # -- the hot path -------------------------------------------------------

    @property
    def current(self) -> Document | None:
        """The active lockdown document, None when off (stale state counts as on)."""
        if self._redis is not None and time.monotonic() - self._synced_at > self._max_staleness:
            return self._document or STALE_PROFILE
        return self._document

    @property
    def version(self) -> int:
        return self._version

    # -- changes --------------------------------------------------------------

    async def switch_on(self, document: Document) -> int:
        return await self._change("set", document)

    async def switch_off(self) -> int:
        return await self._change("del", None)

    async def _change(self, op: str, document: Document | None) -> int:
        if self._script is None:
            self._document = dict(document) if document is not None else None
            self._version += 1
            return self._version
        raw = orjson.dumps(document) if document is not None else b""
        version = int(
            await self._script(keys=[LOCKDOWN, LOCKDOWN_VERSION, LOCKDOWN_CHANNEL], args=[op, raw])
        )
        await self._reload()
        return version

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._redis is not None:
            await self._redis.aclose()

    # -- following ------------------------------------------------------------

    async def _reload(self) -> None:
        assert self._redis is not None
        async with self._lock:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(LOCKDOWN_VERSION)
                pipe.get(LOCKDOWN)
                raw_version, raw_doc = await pipe.execute()
            document: Document | None = None
            if raw_doc:
                try:
                    loaded = orjson.loads(raw_doc)
                    document = loaded if isinstance(loaded, dict) else dict(STALE_PROFILE)
                except orjson.JSONDecodeError:
                    document = dict(STALE_PROFILE)  # unreadable: treated as on
            self._document = document
            self._version = int(raw_version or 0)
            self._synced_at = time.monotonic()

    async def _subscribe(self) -> None:
        assert self._redis is not None
        while not self._closing:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(LOCKDOWN_CHANNEL)
                await self._reload()
                while not self._closing:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and int(msg["data"]) != self._version:
                        await self._reload()
            except (RedisError, OSError, ValueError) as exc:
                log.warning("lockdown subscriber: %s; retrying", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _poll(self) -> None:
        assert self._redis is not None
        while not self._closing:
            await asyncio.sleep(self._poll_interval)
            try:
                current = int(await self._redis.get(LOCKDOWN_VERSION) or 0)
                if current != self._version:
                    await self._reload()
                else:
                    self._synced_at = time.monotonic()
            except (RedisError, OSError) as exc:
                log.warning("lockdown poll: %s", exc)
