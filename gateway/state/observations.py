"""What observe mode saw per route template, shared by every replica (Redis), or
kept in this process (no `redis.url`). Counts and categories only: the observer
(`gateway.core.observe`) never hands a value over.

Redis layout (keys in gateway.state.keys): one hash of templates (-> "1" when the
catalog knows the route), one hash of request counts, and per template one hash
of counters: `n|<path>`, `s|<path>|<shape>`, `h|<path>|<category>`, `named|<path>`.
Bounded: at most `max_routes` templates and `max_fields` counters per template;
past the bound new routes and paths are not recorded (existing counters still
count), so a crawler of random paths cannot fill Redis.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import redis.asyncio as aioredis

from gateway.settings import Settings
from gateway.state.client import connect
from gateway.state.errors import translates_store_errors
from gateway.state.keys import OBSERVED_REQUESTS, OBSERVED_ROUTES, observed_route

log = logging.getLogger(__name__)

# KEYS: routes hash, requests hash, route hash. ARGV: template, catalogued,
# max_routes, max_fields, then field/increment pairs.
_RECORD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local added = 0
for i = 5, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1
     or redis.call('HLEN', KEYS[3]) < tonumber(ARGV[4]) then
    redis.call('HINCRBY', KEYS[3], ARGV[i], tonumber(ARGV[i + 1]))
    added = added + 1
  end
end
return added
"""


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def counters(observation: Mapping[str, Any]) -> dict[str, int]:
    """An observer's `to_dict()` as flat counters (the store's unit)."""
    out: dict[str, int] = {}
    for path, stats in (observation.get("paths") or {}).items():
        out[f"n|{path}"] = int(stats["n"])
        for shape, n in stats["shapes"].items():
            out[f"s|{path}|{shape}"] = int(n)
        for cat, n in stats["hits"].items():
            out[f"h|{path}|{cat}"] = int(n)
        if stats.get("named"):
            out[f"named|{path}"] = 1
    return out


def snapshot_of(
    routes: Mapping[str, str], requests: Mapping[str, int], fields: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, Any]]:
    """template -> {requests, catalogued, paths: {path: {n, shapes, hits, named}}}."""
    out: dict[str, dict[str, Any]] = {}
    for template, catalogued in routes.items():
        paths: dict[str, dict[str, Any]] = {}
        for name, n in fields.get(template, {}).items():
            kind, _, rest = name.partition("|")
            path, _, sub = rest.partition("|") if kind in ("s", "h") else (rest, "", "")
            entry = paths.setdefault(path, {"n": 0, "shapes": {}, "hits": {}, "named": False})
            if kind == "n":
                entry["n"] = n
            elif kind == "s":
                entry["shapes"][sub] = n
            elif kind == "h":
                entry["hits"][sub] = n
            elif kind == "named":
                entry["named"] = True
        out[template] = {
            "requests": int(requests.get(template, 0)),
            "catalogued": catalogued == "1",
            "paths": paths,
        }
    return out


class ObservationStore:
    """`await store.record(observer.to_dict())`; `await store.snapshot()`."""

    def __init__(
        self, client: aioredis.Redis | None, *, max_routes: int = 2000, max_fields: int = 2000
    ) -> None:
        self._redis = client
        self._script = client.register_script(_RECORD) if client is not None else None
        self.max_routes = max_routes
        self.max_fields = max_fields
        self._routes: dict[str, str] = {}
        self._requests: dict[str, int] = {}
        self._fields: dict[str, dict[str, int]] = {}

    @property
    def shared(self) -> bool:
        return self._redis is not None

    @translates_store_errors
    async def record(self, observation: Mapping[str, Any]) -> None:
        template = str(observation["template"])
        flag = "1" if observation.get("catalogued") else "0"
        flat = counters(observation)
        if self._script is not None:
            args: list[Any] = [template, flag, self.max_routes, self.max_fields]
            for name, n in flat.items():
                args += [name, n]
            keys = [OBSERVED_ROUTES, OBSERVED_REQUESTS, observed_route(template)]
            await self._script(keys=keys, args=args)
            return
        if template not in self._routes and len(self._routes) >= self.max_routes:
            return
        self._routes[template] = flag
        self._requests[template] = self._requests.get(template, 0) + 1
        fields = self._fields.setdefault(template, {})
        for name, n in flat.items():
            if name in fields or len(fields) < self.max_fields:
                fields[name] = fields.get(name, 0) + n

    @translates_store_errors
    async def snapshot(self) -> dict[str, dict[str, Any]]:
        if self._redis is None:
            return snapshot_of(self._routes, self._requests, self._fields)
        raw_routes = await self._redis.hgetall(OBSERVED_ROUTES)
        raw_requests = await self._redis.hgetall(OBSERVED_REQUESTS)
        routes = {_s(k): _s(v) for k, v in raw_routes.items()}
        fields: dict[str, dict[str, int]] = {}
        for template in routes:
            raw = await self._redis.hgetall(observed_route(template))
            fields[template] = {_s(k): int(v) for k, v in raw.items()}
        requests = {_s(k): int(v) for k, v in raw_requests.items()}
        return snapshot_of(routes, requests, fields)

    @translates_store_errors
    async def reset(self) -> None:
        """Forget everything (a new catalog version starts a new observation)."""
        if self._redis is None:
            self._routes.clear()
            self._requests.clear()
            self._fields.clear()
            return
        templates = [_s(k) for k in await self._redis.hkeys(OBSERVED_ROUTES)]
        await self._redis.delete(
            OBSERVED_ROUTES, OBSERVED_REQUESTS, *(observed_route(t) for t in templates)
        )

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[ObservationStore]:
    """The store the settings name (Redis when `redis.url` is set)."""
    obs = settings.classification.observe
    client = connect(settings.redis.url) if settings.redis.url else None
    store = ObservationStore(client, max_routes=obs.max_routes, max_fields=obs.max_fields)
    try:
        yield store
    finally:
        await store.close()


__all__ = ["ObservationStore", "counters", "open_store", "snapshot_of"]
