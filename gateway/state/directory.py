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
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.keys import DIRECTORY, DIRECTORY_CHANNEL, DIRECTORY_VERSION

log = logging.getLogger(__name__)

Document = dict[str, Any]
Listener = Callable[[Document, int], None]

# KEYS: document, version, channel. ARGV: the JSON document.
_PUBLISH = """
redis.call('SET', KEYS[1], ARGV[1])
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], v)
return v
"""


class DirectoryStore:
    """Use `await DirectoryStore.open(url, on_change)`; `close()` when done."""

    def __init__(self, client: aioredis.Redis, on_change: Listener | None, poll: float) -> None:
        self._redis = client
        self._on_change = on_change
        self._poll_interval = poll
        self._script = client.register_script(_PUBLISH)
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.version = 0
        self.document: Document | None = None

    @classmethod
    @translates_store_errors
    async def open(
        cls, url: str, on_change: Listener | None = None, *, poll_interval: float = 1.0
    ) -> DirectoryStore:
        self = cls(connect(url), on_change, poll_interval)
        try:
            await self._reload()
        except BaseException:
            await self.close()
            raise
        self._tasks.append(asyncio.create_task(self._subscribe(), name="directory-sub"))
        self._tasks.append(asyncio.create_task(self._poll(), name="directory-poll"))
        return self

    async def publish(self, document: Document) -> int:
        """Replace the shared directory; returns its new version."""
        version = int(
            await self._script(
                keys=[DIRECTORY, DIRECTORY_VERSION, DIRECTORY_CHANNEL],
                args=[orjson.dumps(document)],
            )
        )
        await self._reload()
        return version

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._redis.aclose()

    async def _reload(self) -> None:
        async with self._lock:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(DIRECTORY_VERSION)
                pipe.get(DIRECTORY)
                raw_version, raw_doc = await pipe.execute()
            version = int(raw_version or 0)
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

    async def _subscribe(self) -> None:
        while not self._closing:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(DIRECTORY_CHANNEL)
                await self._reload()
                while not self._closing:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is not None and int(msg["data"]) != self.version:
                        await self._reload()
            except (RedisError, OSError, ValueError) as exc:
                log.warning("directory subscriber: %s; retrying", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _poll(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._poll_interval)
            try:
                if int(await self._redis.get(DIRECTORY_VERSION) or 0) != self.version:
                    await self._reload()
            except (RedisError, OSError, ValueError) as exc:
                log.warning("directory poll: %s", exc)
