"""A bounded LRU of decisions keyed by the normalised input.

Only well-formed decisions are stored (errors and undefined results never reach
`put`). An entry lives for the policy's `obligations.cache_ttl` (0 = do not
cache), never past the end of its time piece (see inputs.py), and never across a
revision change: `purge()` empties the cache, and the revision is part of the key
anyway. Hits and misses are plain counters for the metrics module.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gateway.core.model import Decision
from gateway.policy.inputs import NormalisedInput


@dataclass(frozen=True, slots=True)
class CacheEntry:
    decision: Decision
    digest: str
    expires_at: float  # monotonic


class DecisionCache:
    def __init__(
        self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[NormalisedInput, CacheEntry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.purges = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: NormalisedInput) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry.expires_at <= self._clock():
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: NormalisedInput, decision: Decision, digest: str, ttl: float) -> None:
        """Store for `ttl` seconds; a ttl <= 0 or a cache of size 0 stores nothing."""
        if ttl <= 0 or self.max_entries <= 0:
            return
        self._entries[key] = CacheEntry(decision, digest, self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def purge(self) -> None:
        self._entries.clear()
        self.purges += 1
