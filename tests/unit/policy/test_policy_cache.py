"""Decision cache: LRU bound, TTL, purge, counters."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.core.model import Decision, Subject
from gateway.policy.cache import DecisionCache
from gateway.policy.inputs import NormalisedInput, PolicyRequest, normalise

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)  # Wednesday 10:30 in Shanghai


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def key(route: str) -> NormalisedInput:
    req = PolicyRequest("GET", "view", route, None, False, "internal", True, NOW)
    norm, _ = normalise(
        Subject(id="u"), req, revision="r1", taxonomy_digest="t", grants=[], tz=TZ,
        report_only=False,
    )  # fmt: skip
    return norm


DECISION = Decision.deny("x", "r1")


def test_hit_after_put_and_counters() -> None:
    cache = DecisionCache(10, clock=Clock())
    assert cache.get(key("/a")) is None
    cache.put(key("/a"), DECISION, "d", ttl=5)
    entry = cache.get(key("/a"))
    assert entry is not None
    assert entry.decision is DECISION
    assert entry.digest == "d"
    assert (cache.hits, cache.misses) == (1, 1)


def test_ttl_expires_and_zero_ttl_is_not_stored() -> None:
    clock = Clock()
    cache = DecisionCache(10, clock=clock)
    cache.put(key("/a"), DECISION, "d", ttl=5)
    cache.put(key("/b"), DECISION, "d", ttl=0)
    assert len(cache) == 1
    clock.now = 4.9
    assert cache.get(key("/a")) is not None
    clock.now = 5.0
    assert cache.get(key("/a")) is None
    assert len(cache) == 0


def test_lru_evicts_least_recently_used() -> None:
    cache = DecisionCache(2, clock=Clock())
    cache.put(key("/a"), DECISION, "a", ttl=60)
    cache.put(key("/b"), DECISION, "b", ttl=60)
    assert cache.get(key("/a")) is not None  # /a is now the most recent
    cache.put(key("/c"), DECISION, "c", ttl=60)
    assert cache.get(key("/b")) is None
    assert cache.get(key("/a")) is not None
    assert cache.get(key("/c")) is not None
    assert cache.evictions == 1


def test_purge_empties() -> None:
    cache = DecisionCache(10, clock=Clock())
    cache.put(key("/a"), DECISION, "a", ttl=60)
    cache.purge()
    assert len(cache) == 0
    assert cache.purges == 1
    assert cache.get(key("/a")) is None


def test_size_zero_disables() -> None:
    cache = DecisionCache(0, clock=Clock())
    cache.put(key("/a"), DECISION, "a", ttl=60)
    assert len(cache) == 0
