"""The circuit breaker in front of profile reads, on a fake clock."""

from __future__ import annotations

from api.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_once_per_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=3, open_s=1.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure("refused")
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure("refused")
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 1.0
    assert breaker.allow()  # the probe
    assert breaker.state == "half-open" and not breaker.allow()  # only one at a time
    breaker.failure("still refused")
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 2.5
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.failures == 0 and breaker.allow()


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failures_to_open=2, clock=Clock())
    breaker.failure("x")
    breaker.success()
    breaker.failure("x")
    assert breaker.state == "closed"
