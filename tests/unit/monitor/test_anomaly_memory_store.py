"""The in-memory twin of the Redis counters: exact totals, claims, throttles, pruning."""

from __future__ import annotations

import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings
from gateway.state.anomaly import Batch, MemoryAnomalyStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_tally_returns_totals_of_touched_keys() -> None:
    store = MemoryAnomalyStore()
    first = await store.tally(
        Batch({("a", "L4", 7): {"C1", "C2"}, ("b", "L4", 7): {"C1"}}, {("a", 100): 2}, 3600, 60)
    )
    assert first.customers == {("a", "L4", 7): 2, ("b", "L4", 7): 1}
    assert first.blocked == {("a", 100): 2}
    second = await store.tally(Batch({("a", "L4", 7): {"C2", "C3"}}, {("a", 100): 1}, 3600, 60))
    assert second.customers == {("a", "L4", 7): 3}
    assert second.blocked == {("a", 100): 3}


async def test_old_buckets_are_dropped() -> None:
    store = MemoryAnomalyStore()
    await store.tally(Batch({("a", "L4", 1): {"C1"}}, {("a", 1): 1}, 60, 60))
    await store.tally(Batch({("a", "L4", 3): {"C1"}}, {("a", 3): 1}, 60, 60))
    again = await store.tally(Batch({("a", "L4", 1): {"C2"}}, {("a", 1): 1}, 60, 60))
    assert again.customers == {("a", "L4", 1): 1}  # bucket 1 was forgotten
    assert again.blocked == {("a", 1): 1}


async def test_claim_once_until_it_expires() -> None:
    clock = Clock()
    store = MemoryAnomalyStore(clock)
    assert await store.claim("blocked_burst", "a", 5, ttl=120)
    assert not await store.claim("blocked_burst", "a", 5, ttl=120)
    assert await store.claim("blocked_burst", "b", 5, ttl=120)
    assert await store.claim("off_hours", "a", 5, ttl=120)
    clock.now += 121
    assert await store.claim("blocked_burst", "a", 5, ttl=120)


async def test_throttled_lists_only_current_entries() -> None:
    store = MemoryAnomalyStore()
    await store.throttle("a", 2000.0)
    await store.throttle("b", 1500.0)
    await store.throttle("a", 1800.0)  # never shortens an existing throttle
    assert await store.throttled(1000.0) == {"a": 2000.0, "b": 1500.0}
    assert await store.throttled(1600.0) == {"a": 2000.0}


@pytest.mark.parametrize(
    ("key", "value", "where"),
    [
        ("DISTINCT_CUSTOMERS", "{X4: 10}", "monitor.distinct_customers"),
        ("DISTINCT_CUSTOMERS", "{L4: 0}", "monitor.distinct_customers"),
        ("TIMEZONE", "Mars/Olympus", "monitor.timezone"),
        ("ACTION", "delete", "monitor.action"),
        ("HONEYTOKEN_ACTION", "throttle", "monitor.honeytoken_action"),
    ],
)
def test_bad_monitor_settings_are_named(key: str, value: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={f"CRM_GATEWAY__MONITOR__{key}": value})
    assert any(p.startswith(where) for p in info.value.problems)


def test_monitor_settings_from_the_environment() -> None:
    s = load_settings(
        None,
        environ={
            "CRM_GATEWAY__MONITOR__ENABLED": "true",
            "CRM_GATEWAY__MONITOR__HONEYTOKENS": "[C999901, C999902]",
            "CRM_GATEWAY__MONITOR__DISTINCT_CUSTOMERS": "{L4: 20}",
        },
    )
    assert s.monitor.enabled
    assert s.monitor.honeytokens == ("C999901", "C999902")
    assert s.monitor.distinct_customers == {"L4": 20}
