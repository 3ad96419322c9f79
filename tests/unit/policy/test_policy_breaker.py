"""Circuit breaker states, driven by a fake clock."""

from __future__ import annotations

from gateway.policy.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_consecutive_failures() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=3, cooldown=2.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == "closed"
    assert b.allow()
    b.failure()
    assert b.state == "open"
    assert not b.allow()
    assert b.opened_total == 1


def test_success_resets_the_count() -> None:
    b = CircuitBreaker(threshold=2, cooldown=1.0, clock=Clock())
    b.failure()
    b.success()
    b.failure()
    assert b.state == "closed"


def test_half_open_lets_one_trial_through() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=1, cooldown=2.0, clock=clock)
    b.failure()
    assert not b.allow()
    clock.now += 2.5
    assert b.state == "half-open"
    assert b.allow()  # the trial
    assert not b.allow()  # nobody else while it runs
    b.success()
    assert b.state == "closed"
    assert b.allow()


def test_failed_trial_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=1, cooldown=2.0, clock=clock)
    b.failure()
    clock.now += 2.5
    assert b.allow()
    b.failure()
    assert b.state == "open"
    clock.now += 1.0
    assert not b.allow()
    clock.now += 1.5
    assert b.allow()
    assert b.opened_total == 2


def test_abandoned_trial_frees_the_slot_without_closing() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=1, cooldown=2.0, clock=clock)
    b.failure()
    clock.now += 2.5
    assert b.allow()
    b.abandon()
    assert b.state == "half-open"
    assert b.allow()
