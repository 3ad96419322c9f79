"""Console sessions shared by every replica: one JSON document per session in Redis.

The cookie holds a random session id; Redis holds the document under the sha256
of that id (`keys.console_session`) with a TTL equal to the idle timeout,
renewed on every use. Without Redis the documents live in this process (the
single-process demo). Redis failures surface as `SessionStoreUnavailable`.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Protocol

import orjson
from redis.exceptions import RedisError

from gateway.state.client import connect
from gateway.state.keys import console_session

Document = dict[str, Any]


class SessionStoreUnavailable(Exception):
    """Redis could not be reached or refused the command."""


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore(Protocol):
    async def put(self, session_id: str, document: Document, ttl: float) -> None: ...

    async def get(self, session_id: str) -> Document | None: ...

    async def touch(self, session_id: str, ttl: float) -> None: ...

    async def delete(self, session_id: str) -> None: ...

    async def close(self) -> None: ...


class MemorySessionStore:
    def __init__(self) -> None:
        self._docs: dict[str, tuple[float, Document]] = {}

    async def put(self, session_id: str, document: Document, ttl: float) -> None:
        self._docs[digest(session_id)] = (time.monotonic() + ttl, dict(document))

    async def get(self, session_id: str) -> Document | None:
        found = self._docs.get(digest(session_id))
        if found is None:
            return None
        if found[0] <= time.monotonic():
            self._docs.pop(digest(session_id), None)
            return None
        return dict(found[1])

    async def touch(self, session_id: str, ttl: float) -> None:
        found = self._docs.get(digest(session_id))
        if found is not None:
            self._docs[digest(session_id)] = (time.monotonic() + ttl, found[1])

    async def delete(self, session_id: str) -> None:
        self._docs.pop(digest(session_id), None)

    async def close(self) -> None:
        self._docs.clear()


class RedisSessionStore:
    def __init__(self, url: str) -> None:
        self._r = connect(url)

    async def put(self, session_id: str, document: Document, ttl: float) -> None:
        try:
            await self._r.set(console_session(digest(session_id)), orjson.dumps(document),
                              px=max(1, int(ttl * 1000)))  # fmt: skip
        except (RedisError, OSError) as exc:
            raise SessionStoreUnavailable(str(exc)) from exc

    async def get(self, session_id: str) -> Document | None:
        try:
            raw = await self._r.get(console_session(digest(session_id)))
        except (RedisError, OSError) as exc:
            raise SessionStoreUnavailable(str(exc)) from exc
        if raw is None:
            return None
        doc = orjson.loads(raw)
        return doc if isinstance(doc, dict) else None

    async def touch(self, session_id: str, ttl: float) -> None:
        try:
            await self._r.pexpire(console_session(digest(session_id)), max(1, int(ttl * 1000)))
        except (RedisError, OSError) as exc:
            raise SessionStoreUnavailable(str(exc)) from exc

    async def delete(self, session_id: str) -> None:
        try:
            await self._r.delete(console_session(digest(session_id)))
        except (RedisError, OSError) as exc:
            raise SessionStoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self._r.aclose()


def open_session_store(url: str | None) -> SessionStore:
    return RedisSessionStore(url) if url else MemorySessionStore()
