"""Per-key rate limits kept in Redis, so every API process counts against the same budget.

The counting is the `limits` library's moving window (one sorted window per key in Redis,
updated by its own Lua script), not ours: a key's ``rate: {per_second, burst}`` becomes "burst
requests per ceil(burst / per_second) seconds", which allows ``burst`` requests at once and
``per_second`` on average over the window. Keys live under ``<prefix>rate:``; each of the
library's scripts touches one key, so it runs on a Redis Cluster too (its cluster storage).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from recommender.core.access import Rate


def limits_uri(redis_url: str, cluster: bool = False) -> str:
    """The `limits` storage URI of a redis:// / rediss:// / unix:// URL (``cluster``: of the
    Redis Cluster that node belongs to; TLS is then an option, see :class:`RateLimiter`)."""
    scheme, sep, rest = redis_url.partition("://")
    if cluster:
        return f"async+redis+cluster://{rest.partition('/')[0]}"
    if scheme == "unix":
        return f"async+redis+unix://{rest}"
    return f"async+{scheme}{sep}{rest}"


def window_of(rate: Rate) -> RateLimitItemPerSecond:
    """The moving window of a key's rate: ``burst`` per ``ceil(burst / per_second)`` s."""
    seconds = max(1, math.ceil(rate.burst / rate.per_second))
    return RateLimitItemPerSecond(rate.burst, seconds)


class RateLimiter:
    """``await hit(name, rate)``: None when the request may go on, else seconds to wait."""

    def __init__(self, redis_url: str, prefix: str, *, cluster: bool = False) -> None:
        storage = RedisClusterStorage if cluster else RedisStorage
        tls = {"ssl": True} if cluster and redis_url.startswith("rediss://") else {}
        self.storage = storage(
            limits_uri(redis_url, cluster),
            implementation="redispy",
            key_prefix=f"{prefix}rate",
            **tls,
        )
        self.strategy = MovingWindowRateLimiter(self.storage)

    async def hit(self, name: str, rate: Rate) -> float | None:
        window = window_of(rate)
        if await self.strategy.hit(window, name):
            return None
        stats = await self.strategy.get_window_stats(window, name)
        return max(0.0, stats.reset_time - time.time())
