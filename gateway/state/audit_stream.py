"""The audit Redis Stream: pipelined appends for the emitter, consumer groups for shippers.

Each entry holds one serialized canonical event in field `e`. Appends are one
pipelined XADD per event (no MULTI), optionally with approximate MAXLEN trimming.
Consumers use XREADGROUP / XACK / XAUTOCLAIM so a crashed shipper's entries are
picked up by another. Every Redis failure surfaces as `StreamUnavailable`, so
the audit package never needs to know redis-py's exception tree.

The client does not retry by itself: the emitter's circuit breaker decides when
to try again, so a dead Redis costs one failed attempt per cooldown, not per call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

FIELD = b"e"
Entry = tuple[bytes, bytes]  # (stream id, payload)


class StreamUnavailable(Exception):
    """Redis could not be reached or refused the command."""


class AuditStream:
    def __init__(self, client: aioredis.Redis, stream: str, *, maxlen: int = 0) -> None:
        self._r = client
        self.stream = stream
        self._maxlen = maxlen or None

    @classmethod
    def open(cls, url: str, stream: str, *, maxlen: int = 0, timeout: float = 1.0) -> AuditStream:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=False,
        )
        return cls(client, stream, maxlen=maxlen)

    async def close(self) -> None:
        await self._r.aclose()

    async def add_batch(self, payloads: Sequence[bytes]) -> list[bytes]:
        """XADD every payload in one round trip; returns the entry ids."""
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.xadd(self.stream, {FIELD: payload}, maxlen=self._maxlen, approximate=True)
                ids: list[bytes] = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc
        return ids

    async def wait_aof(self, timeout_ms: int) -> bool:
        """WAITAOF 1 0 (Redis 7.2+): True once the local AOF is fsynced. False when the
        server lacks the command or AOF is off (the caller then relies on its own spool)."""
        try:
            reply = await self._r.execute_command(  # type: ignore[no-untyped-call]
                "WAITAOF", 1, 0, timeout_ms
            )
        except ResponseError:
            return False
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc
        return bool(reply and int(reply[0]) >= 1)

    async def ensure_group(self, group: str) -> None:
        try:
            await self._r.xgroup_create(self.stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StreamUnavailable(str(exc)) from exc
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc

    async def read_group(
        self, group: str, consumer: str, *, count: int, block_ms: int | None, pending: bool = False
    ) -> list[Entry]:
        """New entries for `consumer` (or, with `pending`, the ones it holds unacked)."""
        try:
            reply: Any = await self._r.xreadgroup(
                group,
                consumer,
                {self.stream: "0" if pending else ">"},
                count=count,
                block=None if pending else block_ms,
            )
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc
        return _entries(reply[0][1]) if reply else []

    async def autoclaim(
        self, group: str, consumer: str, *, min_idle_ms: int, count: int
    ) -> list[Entry]:
        """Take over entries another consumer read but did not ack for `min_idle_ms`."""
        try:
            reply: Any = await self._r.xautoclaim(
                self.stream, group, consumer, min_idle_ms, start_id="0-0", count=count
            )
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc
        return _entries(reply[1])

    async def ack(self, group: str, ids: Sequence[bytes]) -> int:
        if not ids:
            return 0
        try:
            return int(await self._r.xack(self.stream, group, *ids))
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc

    async def dead_letter(self, dlq: str, entries: Sequence[Entry]) -> None:
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for entry_id, payload in entries:
                    pipe.xadd(dlq, {FIELD: payload, b"id": entry_id})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc

    async def pending_count(self, group: str) -> int:
        try:
            info: Any = await self._r.xpending(self.stream, group)
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc
        return int(info["pending"])

    async def length(self) -> int:
        try:
            return int(await self._r.xlen(self.stream))
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc

    async def read_recent(self, count: int) -> list[Entry]:
        """The newest `count` entries, newest first (XREVRANGE), for the console's live view."""
        try:
            rows: Any = await self._r.xrevrange(self.stream, count=count)
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc
        return _entries(rows)

    @property
    def writers_key(self) -> str:
        """The writer registry: a hash next to the stream, writer id -> JSON record."""
        return self.stream + ":writers"

    async def put_writer(self, writer: str, record: bytes) -> None:
        try:
            await self._r.hset(self.writers_key, writer, record)
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc

    async def read_writers(self) -> dict[str, bytes]:
        try:
            rows: Any = await self._r.hgetall(self.writers_key)
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(str(exc)) from exc
        return {k.decode(): v for k, v in rows.items()}

    async def read_all(self, page: int = 1000) -> AsyncIterator[Entry]:
        """Every entry in stream order (XRANGE pages), for the verifier."""
        start = "-"
        while True:
            try:
                rows: Any = await self._r.xrange(self.stream, min=start, count=page)
            except (RedisError, OSError) as exc:
                raise StreamUnavailable(str(exc)) from exc
            for entry in _entries(rows):
                yield entry
            if len(rows) < page:
                return
            start = "(" + rows[-1][0].decode()


def _entries(rows: Any) -> list[Entry]:
    out: list[Entry] = []
    for entry_id, fields in rows:
        # An entry trimmed while pending comes back without fields: hand it out with an
        # empty payload so the consumer acks it instead of holding it forever.
        payload = fields.get(FIELD) if fields else None
        out.append((entry_id, payload if isinstance(payload, bytes) else b""))
    return out
