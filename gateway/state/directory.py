"""The subject directory shared through Redis (`identity.directory_source: redis`).

With a file directory every replica must be handed the same file. With this
store the security team publishes the directory once (`crm-gateway users
publish-directory FILE`) and every replica follows the same document: a JSON
copy of the YAML structure (API keys as hashes only), a version counter and a
change channel, exactly like the revocation list. Replicas reload on a
pub/sub message or, if messages are lost, on the next poll of the version.

The document is validated by `gateway.identity.directory` before it is
published and again when loaded; a replica that cannot parse a new version
keeps the previous one and says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.follower import Follower
from gateway.state.keys import DIRECTORY, DIRECTORY_CHANNEL, DIRECTORY_VERSION

log = logging.getLogger(__name__)

Document = dict[str, Any]
Listener = Callable[[Document, int], None]

_KEYS = (DIRECTORY, DIRECTORY_VERSION, DIRECTORY_CHANNEL)


class DirectoryStore:
    """Use `await DirectoryStore.open(url, on_change)`; `close()` when done."""

    def __init__(self, client: aioredis.Redis, on_change: Listener | None, poll: float) -> None:
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self._follower = Follower(
            client, "directory", _KEYS, self._reload, lambda: self.version, poll
        )
        self.version = 0
        self.document: Document | None = None

    @classmethod
    @translates_store_errors
    async def open(
        cls, url: str, on_change: Listener | None = None, *, poll_interval: float = 1.0
    ) -> DirectoryStore:
        self = cls(connect(url), on_change, poll_interval)
        await self._follower.begin(self.close)
        return self

    async def publish(self, document: Document) -> int:
        """Replace the shared directory; returns its new version."""
        version = await self._follower.publish("set", value=orjson.dumps(document))
        await self._reload()
        return version

    async def close(self) -> None:
        await self._follower.close(client=True)

    async def _reload(self) -> None:
        async with self._lock:
            version, raw_doc = await self._follower.snapshot()
            if version == self.version and self.document is not None:
                return
            document = orjson.loads(raw_doc) if raw_doc else None
            self.version = version
            if document is None or not isinstance(document, dict):
                return
            self.document = document
            if self._on_change is not None:
                try:
                    self._on_change(document, version)
                except Exception:  # a bad document must not stop the follower
                    log.exception("directory version %s not applied", version)
