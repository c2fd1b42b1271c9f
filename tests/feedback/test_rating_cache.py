"""RatingCache over the real FeedbackStore: served for ttl_s, then stale while one background
read refreshes it, read before answering past 2 * ttl_s."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from recommender.adapters.feedback_store import FeedbackStore, ItemRating, RatingCache
from recommender.adapters.redis_store import connect
from recommender.core.feedback import CounterKey, PartitionUpdate
from recommender.core.settings import Settings

pytestmark = pytest.mark.integration


class CountedStore(FeedbackStore):
    """The real store, counting its rating reads (and failing them on demand)."""

    reads: list[list[str]]
    failing = False

    async def ratings(self, item_ids: Sequence[str]) -> dict[str, ItemRating]:
        self.reads.append(list(item_ids))
        if self.failing:
            raise RedisConnectionError("Redis is down (test)")
        return await super().ratings(item_ids)


@pytest.fixture
async def store(stack: Settings) -> AsyncIterator[CountedStore]:
    client = connect(stack.redis_url)
    prefix = f"zmot:ratings-{uuid.uuid4().hex[:10]}:"
    counted = CountedStore(client, prefix, 4)
    counted.reads = []
    yield counted
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose(close_connection_pool=True)


async def rate(store: FeedbackStore, offset: int, item: str, count: int, total: int) -> None:
    """Add ``count`` ratings summing to ``total`` for ``item`` (partition 0, next offset)."""
    increments = {CounterKey("ratings", item): count, CounterKey("rating_sum", item): total}
    expected = None if offset == 0 else offset - 1
    assert await store.apply([PartitionUpdate(0, expected, offset, increments)]) == []


async def test_ratings_are_served_then_refreshed_behind_the_answer(store: CountedStore) -> None:
    now = [100.0]
    cache = RatingCache(store, ttl_s=5.0, clock=lambda: now[0])
    await rate(store, 0, "SKU-1", 2, 7)
    assert await cache.ratings(["SKU-1"]) == {"SKU-1": ItemRating(2, 3.5)}
    await rate(store, 1, "SKU-1", 2, 9)  # now 4 ratings, mean 4.0

    now[0] = 104.9  # within ttl_s: no read
    assert await cache.ratings(["SKU-1"]) == {"SKU-1": ItemRating(2, 3.5)}
    assert len(store.reads) == 1

    now[0] = 106.0  # stale: the old value at once, one refresh behind it for all callers
    answers = await asyncio.gather(*(cache.ratings(["SKU-1"]) for _ in range(5)))
    assert answers == [{"SKU-1": ItemRating(2, 3.5)}] * 5
    await asyncio.sleep(0.2)
    assert store.reads[1:] == [["SKU-1"]]
    assert await cache.ratings(["SKU-1"]) == {"SKU-1": ItemRating(4, 4.0)}

    # an item never read is read before answering, the others come from the cache
    await rate(store, 2, "SKU-2", 1, 5)
    assert await cache.ratings(["SKU-1", "SKU-2"]) == {
        "SKU-1": ItemRating(4, 4.0),
        "SKU-2": ItemRating(1, 5.0),
    }
    assert store.reads[2:] == [["SKU-2"]]

    # older than 2 * ttl_s: read before answering, never served
    await rate(store, 3, "SKU-1", 1, 1)
    now[0] = 116.0
    assert (await cache.ratings(["SKU-1"]))["SKU-1"] == ItemRating(5, 3.4)
    await cache.close()


async def test_a_failed_refresh_keeps_the_values_until_they_age_out(store: CountedStore) -> None:
    now = [0.0]
    cache = RatingCache(store, ttl_s=5.0, clock=lambda: now[0])
    await rate(store, 0, "SKU-1", 3, 12)
    assert await cache.ratings(["SKU-1"]) == {"SKU-1": ItemRating(3, 4.0)}
    store.failing = True
    now[0] = 6.0
    assert await cache.ratings(["SKU-1"]) == {"SKU-1": ItemRating(3, 4.0)}
    await asyncio.sleep(0.1)  # the background read failed, quietly
    assert len(store.reads) == 2
    assert await cache.ratings(["SKU-1"]) == {"SKU-1": ItemRating(3, 4.0)}
    now[0] = 10.0  # past 2 * ttl_s the read is the answer's, and so is its error
    with pytest.raises(RedisConnectionError):
        await cache.ratings(["SKU-1"])
    store.failing = False
    assert await cache.ratings(["SKU-1"]) == {"SKU-1": ItemRating(3, 4.0)}
    await cache.close()


async def test_cached_answers_from_the_cache_alone_or_says_none(store: CountedStore) -> None:
    now = [0.0]
    cache = RatingCache(store, ttl_s=5.0, clock=lambda: now[0])
    await rate(store, 0, "SKU-1", 2, 7)
    assert cache.cached(["SKU-1"]) is None  # never read: the caller reads (ratings)
    assert store.reads == []
    await cache.ratings(["SKU-1"])
    assert cache.cached(["SKU-1"]) == {"SKU-1": ItemRating(2, 3.5)}
    assert cache.cached(["SKU-1", "SKU-2"]) is None
    await rate(store, 1, "SKU-1", 2, 9)
    now[0] = 6.0  # stale: still served, and one background read refreshes it
    assert cache.cached(["SKU-1"]) == {"SKU-1": ItemRating(2, 3.5)}
    await asyncio.sleep(0.2)
    assert store.reads == [["SKU-1"], ["SKU-1"]]
    assert cache.cached(["SKU-1"]) == {"SKU-1": ItemRating(4, 4.0)}
    now[0] = 20.0  # too old to serve
    assert cache.cached(["SKU-1"]) is None
    await cache.close()
