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

import logging
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.follower import Followed
from gateway.state.keys import LOCKDOWN, LOCKDOWN_CHANNEL, LOCKDOWN_VERSION

log = logging.getLogger(__name__)

_KEYS = (LOCKDOWN, LOCKDOWN_VERSION, LOCKDOWN_CHANNEL)

Document = dict[str, Any]
STALE_PROFILE: Document = {"profile": "stale", "reason": "lockdown state unconfirmed (Redis)"}


class LockdownState(Followed):
    """Use `await LockdownState.open(url)`; `close()` when done."""

    def __init__(
        self, client: aioredis.Redis | None, poll_interval: float, max_staleness: float
    ) -> None:
        self._redis = client
        self._max_staleness = max_staleness
        self._document: Document | None = None
        self._follow(client, "lockdown", _KEYS, self._reload, poll_interval)

    @classmethod
    @translates_store_errors
    async def open(
        cls, url: str | None, *, poll_interval: float = 0.5, max_staleness: float = 30.0
    ) -> LockdownState:
        if not url:
            return cls(None, poll_interval, max_staleness)
        self = cls(connect(url), poll_interval, max_staleness)
        assert self._follower is not None
        await self._follower.begin(self.close)
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
        if self._follower is None:
            self._document = dict(document) if document is not None else None
            self._version += 1
            return self._version
        raw = orjson.dumps(document) if document is not None else b""
        version = await self._follower.publish(op, value=raw)
        await self._reload()
        return version

    # -- following ------------------------------------------------------------

    def _load(self, raw: Any) -> None:
        document: Document | None = None
        if raw:
            try:
                loaded = orjson.loads(raw)
                document = loaded if isinstance(loaded, dict) else dict(STALE_PROFILE)
            except orjson.JSONDecodeError:
                document = dict(STALE_PROFILE)  # unreadable: treated as on
        self._document = document
