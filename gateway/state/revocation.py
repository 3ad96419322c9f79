"""Revoked subjects, known to every replica within a second.

A departed employee (离职) must lose access everywhere at once, including with
tokens that are still cryptographically valid. `is_revoked` sits on every
request, so it is a set lookup in process memory; the set is kept current by

1. a pub/sub subscriber: every change publishes the new version on
   `REVOCATION_CHANNEL`, and each replica reloads its snapshot on a message;
2. a poll of `REVOCATION_VERSION` every `poll_interval` seconds (500 ms by
   default), the safety net when pub/sub messages are lost or the subscriber
   connection drops.

Writes are one Lua script (HSET/HDEL, INCR version, PUBLISH: `state.follower`),
so a version is never published before its change is visible. Snapshots are read in one MULTI
(version + hash), under a lock, so a slow reload can never roll the set back.

Without Redis (`url` empty) the list lives in this process only: fine for the
single-process demo, useless for several replicas (settings refuse production
without Redis).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.follower import Followed
from gateway.state.keys import REVOCATION_CHANNEL, REVOCATION_VERSION, REVOKED

log = logging.getLogger(__name__)

_KEYS = (REVOKED, REVOCATION_VERSION, REVOCATION_CHANNEL)


@dataclass(frozen=True, slots=True)
class Revocation:
    subject_id: str
    reason: str
    by: str
    at: str  # RFC 3339, UTC


class RevocationList(Followed):
    """Use `await RevocationList.open(url)`; `close()` when done."""

    def __init__(self, client: aioredis.Redis | None, poll_interval: float = 0.5) -> None:
        self._redis = client
        self._entries: dict[str, Revocation] = {}
        self._follow(client, "revocation", _KEYS, self._reload, poll_interval)

    @classmethod
    @translates_store_errors
    async def open(
        cls, url: str | None, *, poll_interval: float = 0.5, subscribe: bool = True
    ) -> RevocationList:
        """Load the snapshot (raising if Redis is configured but unreachable: a gateway
        must not start without knowing who is revoked), then start the refreshers."""
        if not url:
            return cls(None, poll_interval)
        self = cls(connect(url), poll_interval)
        assert self._follower is not None
        await self._follower.begin(self.close, subscribe=subscribe)
        return self

    # -- the hot path -------------------------------------------------------

    def is_revoked(self, subject_id: str) -> bool:
        return subject_id in self._entries

    @property
    def version(self) -> int:
        """Changes with every revoke/restore: part of any decision cache key."""
        return self._version

    def stale_for(self) -> float:
        """Seconds since the snapshot was last confirmed against Redis (0 in memory mode)."""
        return 0.0 if self._redis is None else time.monotonic() - self._synced_at

    # -- changes --------------------------------------------------------------

    async def revoke(self, subject_id: str, reason: str, by: str) -> None:
        entry = Revocation(subject_id, reason, by, datetime.now(UTC).isoformat())
        if self._follower is None:
            self._entries[subject_id] = entry
            self._version += 1
            return
        value = orjson.dumps({"reason": reason, "by": by, "at": entry.at})
        await self._follower.publish("hset", field=subject_id, value=value)
        await self._reload()

    async def restore(self, subject_id: str, by: str) -> bool:
        """Lift a revocation; False if the subject was not revoked."""
        if self._follower is None:
            self._version += 1
            return self._entries.pop(subject_id, None) is not None
        await self._reload()
        known = subject_id in self._entries
        await self._follower.publish("hdel", field=subject_id)
        log.info("revocation of %s lifted by %s", subject_id, by)
        await self._reload()
        return known

    async def list(self) -> list[Revocation]:
        if self._redis is not None:
            await self._reload()
        return sorted(self._entries.values(), key=lambda r: r.subject_id)

    # -- keeping the snapshot current ----------------------------------------

    _hash_snapshot = True

    def _load(self, raw: Any) -> None:
        self._entries = {k.decode(): _decode(k.decode(), v) for k, v in dict(raw).items()}


def _decode(subject_id: str, raw: bytes) -> Revocation:
    try:
        data = orjson.loads(raw)
        return Revocation(subject_id, str(data["reason"]), str(data["by"]), str(data["at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        # A hand-written entry still revokes: the presence of the id is what counts.
        return Revocation(subject_id, "", "", "")
