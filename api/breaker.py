"""A circuit breaker in front of the API's profile reads: a dead Redis is not hammered.

Closed, every read goes to Redis. After ``failures_to_open`` failures in a row (errors or reads
past their deadline) it opens: reads are skipped for ``open_s`` seconds and requests are
answered at once without the profile (popular offers, flagged ``fallback``). Then one request
probes Redis (half-open) while the others still skip it: success closes the breaker, failure
opens it for another ``open_s``. Single event loop, so no locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Counts consecutive failures of one dependency and says whether to call it now."""

    def __init__(
        self,
        failures_to_open: int = 3,
        open_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.probing = False
        self.last_error: str | None = None

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.probing else "open"

    def allow(self) -> bool:
        """Whether this call may go to the dependency (at most one probe while not closed)."""
        if self.opened_at is None:
            return True
        if self.probing or self.clock() < self.opened_at + self.open_s:
            return False
        self.probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False
        self.last_error = None

    def failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.probing or self.failures >= self.failures_to_open:
            self.opened_at = self.clock()
        self.probing = False
