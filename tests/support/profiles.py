"""Profiles for tests: build one with given weights, store it, read back what is stored.

Tests go through :class:`~recommender.adapters.redis_store.ProfileStore` rather than Redis keys;
the stored bytes themselves are checked in one place, ``tests/adapters/test_redis_codec.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from recommender.adapters.redis_store import ProfileStore
from recommender.core.profile import Profile

STORED_REL = 1e-6
"""Relative tolerance of a weight read from Redis against the same profile computed offline:
a compact profile stores weights in single precision, so each write rounds a weight to 24
significant bits (relative error below 6e-8); weights only grow between rescales, so after k
writes of a user's profile the error stays below k * 6e-8 of the weight. 1e-6 allows about 16
writes per user, more than these tests make; everything else (features, times, counts,
fences) is compared exactly."""

PutProfile = Callable[[str, Profile], Awaitable[None]]
"""``await put_profile(user_id, profile)``: the ``put_profile`` fixture of the API tests."""


def profile_of(
    weights: dict[str, float], at: float | None = None, *, n_events: int | None = None, **extra: Any
) -> Profile:
    """A profile whose weights are as given at ``at`` (default now), last updated then.

    ``n_events`` defaults to one event per weight; ``extra`` sets other fields (purchases ...).
    """
    at = time.time() if at is None else at
    events = len(weights) if n_events is None else n_events
    return Profile(weights=dict(weights), landmark=at, last_ts=at, n_events=events, **extra)


async def store_profile(store: ProfileStore, user_id: str, profile: Profile) -> None:
    """Write ``profile`` for a user who has none stored yet (as the worker writes a new user)."""
    assert await store.put_many([(user_id, None, profile)]) == []


async def stored_profiles(store: ProfileStore) -> dict[str, Profile]:
    """Every profile under the store's prefix, by user, read through the store."""
    users = await store.user_ids()
    found = zip(users, await store.get_many(users), strict=True)
    return {user: profile for user, profile in found if profile is not None}
