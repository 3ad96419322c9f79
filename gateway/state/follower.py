"""Following a record every replica shares: one version counter, one change channel.

The revocation list, the lockdown switch, the published directory and the grants
are each a value in Redis with a version key and a pub/sub channel. A change is
one Lua script (`CHANGE`: write, INCR the version, PUBLISH it), so a version is
never announced before its value is visible. Each replica keeps a snapshot in
memory and a `Follower` keeps it current:

1. a subscriber reloads on every message that does not carry the version already
   held (a message carrying something else, such as a grant id, always reloads);
2. a poll reads the version every `poll_interval` seconds, the safety net when
   messages are lost or the subscriber connection drops; a poll that finds the
   version unchanged confirms the snapshot (`on_confirmed`, for staleness limits).

Both loops retry on Redis errors and stop on `close()`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

__all__ = ["CHANGE", "Follower"]

# KEYS: value, version, channel. ARGV: op, hash field (hset/hdel), value (set/hset).
CHANGE = """
if ARGV[1] == 'hset' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
elseif ARGV[1] == 'hdel' then
  redis.call('HDEL', KEYS[1], ARGV[2])
elseif ARGV[1] == 'set' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], v)
return v
"""

_RETRY = 0.5  # seconds before a failed subscriber connects again


class Follower:
    """The subscriber and poll loops of one shared record (see the module doc)."""

    def __init__(
        self,
        client: aioredis.Redis,
        name: str,
        keys: tuple[str, str, str],
        reload: Callable[[], Awaitable[None]],
        version: Callable[[], int],
        poll_interval: float,
        on_confirmed: Callable[[], None] | None = None,
    ) -> None:
        """`keys`: the value, its version counter and its change channel."""
        self._redis = client
        self._name = name
        self._keys = keys
        _, self._version_key, self._channel = keys
        self._script = client.register_script(CHANGE)
        self._reload = reload
        self._version = version
        self._poll_interval = poll_interval
        self._on_confirmed = on_confirmed
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def publish(self, op: str, *, field: str = "", value: bytes | str = b"") -> int:
        """Change the value (`CHANGE`: op set/del/hset/hdel); returns the new version."""
        return int(await self._script(keys=list(self._keys), args=[op, field, value]))

    async def begin(
        self, on_failure: Callable[[], Awaitable[None]], *, subscribe: bool = True
    ) -> None:
        """Load the first snapshot (on failure: `on_failure()`, then raise), then follow."""
        try:
            await self._reload()
        except BaseException:
            await on_failure()
            raise
        self.start(subscribe=subscribe)

    def start(self, *, subscribe: bool = True) -> None:
        if subscribe:
            self._tasks.append(asyncio.create_task(self._subscribe(), name=f"{self._name}-sub"))
        self._tasks.append(asyncio.create_task(self._poll(), name=f"{self._name}-poll"))

    async def snapshot(self, *, hash_value: bool = False) -> tuple[int, Any]:
        """The version and the value (a hash's fields with `hash_value`), read in one
        transaction so they belong together."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._version_key)
            if hash_value:
                pipe.hgetall(self._keys[0])
            else:
                pipe.get(self._keys[0])
            raw_version, raw = await pipe.execute()
        return int(raw_version or 0), raw

    async def close(self, *, client: bool = False) -> None:
        """Stop both loops (`client`: and close the Redis client too)."""
        # The flag, not only cancel(): redis-py may turn a cancellation that races a
        # read timeout into TimeoutError, which the loops would otherwise retry.
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if client:
            await self._redis.aclose()

    async def _subscribe(self) -> None:
        while not self._closing:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._reload()  # anything published before we listened
                while not self._closing:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and _announced(msg.get("data")) != self._version():
                        await self._reload()
            except (RedisError, OSError, ValueError) as exc:
                log.warning("%s subscriber: %s; retrying", self._name, exc)
                await asyncio.sleep(_RETRY)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2

    async def _poll(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._poll_interval)
            try:
                current = int(await self._redis.get(self._version_key) or 0)
                if current != self._version():
                    await self._reload()
                elif self._on_confirmed is not None:
                    self._on_confirmed()
            except (RedisError, OSError, ValueError) as exc:
                log.warning("%s poll: %s", self._name, exc)


def _announced(data: object) -> int | None:
    """The version a change message carries (None: it names something else)."""
    if not isinstance(data, bytes | str):
        return None
    try:
        return int(data)
    except ValueError:
        return None


class Followed(abc.ABC):
    """A snapshot of Redis state kept in step by a Follower: the version it holds, when
    it was last known current (for staleness limits), and the lock its reloads take.
    Subclasses call `_follow` in their constructor and define `_load`, which turns the
    raw snapshot (a string, or a hash's fields with `_hash_snapshot`) into their state."""

    _hash_snapshot = False
    _version: int
    _synced_at: float
    _lock: asyncio.Lock
    _follower: Follower | None

    def _follow(
        self,
        client: aioredis.Redis | None,
        name: str,
        keys: tuple[str, str, str],
        reload: Callable[[], Awaitable[None]],
        poll_interval: float,
    ) -> None:
        self._version = 0
        self._synced_at = time.monotonic()
        self._lock = asyncio.Lock()
        self._follower = None if client is None else Follower(
            client, name, keys, reload, lambda: self._version, poll_interval,
            on_confirmed=self._confirmed,
        )  # fmt: skip

    async def _reload(self) -> None:
        assert self._follower is not None
        async with self._lock:
            version, raw = await self._follower.snapshot(hash_value=self._hash_snapshot)
            self._load(raw)
            self._version = version
            self._synced_at = time.monotonic()

    @abc.abstractmethod
    def _load(self, raw: Any) -> None:
        """Take the snapshot's raw value (the subclass's own record) into memory."""

    async def close(self) -> None:
        if self._follower is not None:
            await self._follower.close(client=True)

    def _confirmed(self) -> None:
        self._synced_at = time.monotonic()
