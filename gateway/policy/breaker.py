"""A small circuit breaker for the OPA client.

When OPA is down every request would otherwise wait out the full deadline
before failing closed. After `threshold` consecutive failures the breaker
opens and calls fail at once for `cooldown` seconds; then one trial call is let
through (half-open): success closes the breaker, failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self.failures = 0  # consecutive
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.opened_total = 0

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one trial at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def abandon(self) -> None:
        """A call ended without telling us anything (cancelled): free the trial slot."""
        self._trial_in_flight = False

    def failure(self) -> None:
        self.failures += 1
        was_trial = self._trial_in_flight
        self._trial_in_flight = False
        if was_trial or self.failures >= self.threshold:
            if self._opened_at is None or was_trial:
                self.opened_total += 1
            self._opened_at = self._clock()
