"""Per-key rate limits kept in Redis, so every API process counts against the same budget.

The counting is the `limits` library's moving window (one sorted window per key in Redis,
updated by its own Lua script), not ours: a key's ``rate: {per_second, burst}`` becomes "burst
requests per ceil(burst / per_second) seconds", which allows ``burst`` requests at once and
``per_second`` on average over the window. Keys live under ``<prefix>rate:``.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from recommender.core.access import Rate


def limits_uri(redis_url: str) -> str:
    """The `limits` storage URI of a redis:// / rediss:// / unix:// URL."""
    scheme, sep, rest = redis_url.partition("://")
    if scheme == "unix":
        return f"async+redis+unix://{rest}"
    return f"async+{scheme}{sep}{rest}"


def window_of(rate: Rate) -> RateLimitItemPerSecond:
    """The moving window of a key's rate: ``burst`` per ``ceil(burst / per_second)`` s."""
    seconds = max(1, math.ceil(rate.burst / rate.per_second))
    return RateLimitItemPerSecond(rate.burst, seconds)


class RateLimiter:
    """``await hit(name, rate)``: None when the request may go on, else seconds to wait."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.storage = RedisStorage(
            limits_uri(redis_url), implementation="redispy", key_prefix=f"{prefix}rate"
        )
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, name: str, rate: Rate) -> float | None:
        window = window_of(rate)
        if await self.strategy.hit(window, name):
            return None
        stats = await self.strategy.get_window_stats(window, name)
        return max(0.0, stats.reset_time - time.time())
