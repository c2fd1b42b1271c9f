"""A batch's profiles written in round trips of at most ``write_chunk`` profiles, each profile
behind its own fence (``ProfileStore.put_many``, :func:`write_rounds`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from recommender.adapters.redis_store import ProfileStore, write_rounds
from tests.support.profiles import profile_of, stored_profiles


def test_write_rounds_bound_profiles_and_bytes_per_round_trip() -> None:
    # one Redis: one group; 7 profiles in round trips of at most 3
    assert write_rounds([list(range(7))], [10] * 7, 3, 1000) == [
        [[0, 1, 2]],
        [[3, 4, 5]],
        [[6]],
    ]
    # a cluster's slot groups share a round trip, split where it fills, one call per group
    assert write_rounds([[0, 3], [1, 4, 5], [2]], [10] * 6, 4, 1000) == [
        [[0, 3], [1, 4]],
        [[5], [2]],
    ]
    # the byte bound cuts earlier; a profile bigger than it goes alone
    assert write_rounds([[0, 1, 2, 3]], [40, 40, 500, 10], 10, 100) == [
        [[0, 1]],
        [[2]],
        [[3]],
    ]
    assert write_rounds([], [], 3, 100) == []
    # every index exactly once, in order, whatever the bounds
    groups = [[0, 2, 4, 6, 8], [1, 3], [5, 7, 9]]
    for most in (1, 2, 3, 10):
        rounds = write_rounds(groups, [30] * 10, most, 70)
        calls = [call for calls in rounds for call in calls]
        assert [i for call in calls for i in call] == [i for g in groups for i in g]
        assert all(len(sum(calls_, [])) <= min(most, 2) for calls_ in rounds)


class Counting(ProfileStore):
    """Counts the script calls; fails the ``fail_at``-th (1-based) before sending it."""

    def __init__(self, *args: Any, fail_at: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []
        replace = self._replace

        async def counted(keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
            if fail_at is not None and len(self.calls) + 1 == fail_at:
                raise RedisConnectionError("lost (simulated)")
            self.calls.append(len(keys))
            return await replace(keys, args, client)

        self._replace = counted  # type: ignore[assignment]


@pytest.fixture
async def prefix(client: aioredis.Redis) -> AsyncIterator[str]:
    prefix = f"zmot:chunks-{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)


USERS = [f"u{i}" for i in range(11)]


@pytest.mark.integration
async def test_more_profiles_than_a_chunk_go_in_several_calls_and_all_land(
    client: aioredis.Redis, prefix: str
) -> None:
    store = Counting(client, prefix, ttl_s=600, write_chunk=4, cache_size=100)
    profiles = {u: profile_of({f"q:{u}": 1.0}, partition=0, offset=i) for i, u in enumerate(USERS)}
    written: list[str] = []
    assert await store.put_many([(u, None, p) for u, p in profiles.items()], written) == []
    assert store.calls == [4, 4, 3]
    assert written == USERS
    assert set(await stored_profiles(store)) == set(USERS)
    # each profile keeps its own fence: stale ones anywhere in the chunks are refused
    stale = {"u1", "u6", "u10"}
    updates = [(u, (0, 99) if u in stale else (0, i), profiles[u]) for i, u in enumerate(USERS)]
    written.clear()
    assert await store.put_many(updates, written) == ["u1", "u6", "u10"]
    assert written == [u for u in USERS if u not in stale]


@pytest.mark.integration
async def test_a_failed_chunk_leaves_the_earlier_ones_written_and_says_which(
    client: aioredis.Redis, prefix: str
) -> None:
    store = Counting(client, prefix, ttl_s=600, write_chunk=4, fail_at=2)
    written: list[str] = []
    with pytest.raises(RedisConnectionError):
        await store.put_many([(u, None, profile_of({"q:tv": 1.0})) for u in USERS], written)
    assert written == USERS[:4]
    assert sorted(await stored_profiles(store)) == sorted(USERS[:4])


def test_write_chunk_must_be_positive() -> None:
    with pytest.raises(ValueError, match="write_chunk"):
        ProfileStore(aioredis.Redis(), "x:", ttl_s=60, write_chunk=0)
