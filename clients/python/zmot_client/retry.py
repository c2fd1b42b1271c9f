"""When to retry and how long to wait: pure functions shared by both clients.

A ``429`` (over the key's rate) or ``503`` (Redis or Kafka down, the server at its concurrency
limit) is retried, and so is a request that got no answer at all. The wait honours the
server's ``Retry-After`` (seconds or an HTTP date) and otherwise grows exponentially with
jitter (a random factor in [0.5, 1)), so many clients that failed together do not return
together. Retried events are safe to tell apart: :func:`zmot_client.events.prepared` gives
each event an ``event_id`` and a ``ts`` before the first attempt, so every attempt sends the
same event.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (1: never retry); waits of ``backoff_s * 2**n`` (at most
    ``max_backoff_s``) times a jitter factor, or the server's ``Retry-After`` up to
    ``max_retry_after_s`` (a longer one is not waited for: the error is raised)."""

    attempts: int = 4
    backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (None when absent or unreadable)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def delay_before_retry(
    policy: RetryPolicy,
    attempt: int,
    retry_after: float | None,
    rand: random.Random | None = None,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 0), or None
    when no attempt is left or the server asks for a longer wait than the policy allows."""
    if attempt + 1 >= policy.attempts:
        return None
    if retry_after is not None:
        return retry_after if retry_after <= policy.max_retry_after_s else None
    jitter = 0.5 + 0.5 * (rand or random).random()
    return min(policy.max_backoff_s, policy.backoff_s * 2.0**attempt) * jitter
