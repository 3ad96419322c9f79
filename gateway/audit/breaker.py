"""A small circuit breaker so a dead Redis costs nothing per event.

Closed: every attempt goes through. After a failure the breaker opens for
`cooldown` seconds, during which callers skip the destination (and spool); then
one probe is let through (half-open): success closes it, failure re-opens it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    __slots__ = ("_clock", "_cooldown", "_open_until", "failures", "state")

    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._open_until = 0.0
        self.failures = 0
        self.state = "closed"

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and self._clock() >= self._open_until:
            self.state = "half_open"
            return True
        return False

    def success(self) -> None:
        self.state = "closed"

    def failure(self) -> None:
        self.failures += 1
        self.state = "open"
        self._open_until = self._clock() + self._cooldown
