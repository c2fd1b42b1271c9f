"""The feedback loop end to end: Kafka -> worker subprocess -> exposure and counters in Redis."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.redis_client import client_for, close
from recommender.adapters.redis_store import ProfileStore
from recommender.core.feedback import ItemRating, OfferStats
from recommender.core.settings import Settings
from tests.stream.test_stream_worker import drop_prefix, produce, read_profiles

pytestmark = pytest.mark.integration

# Recent record times: the broker deletes records older than its retention (see stream tests).
NOW_MS = int(time.time() * 1000)
T0 = NOW_MS - 2 * 3_600_000
DAY_S = 86_400.0


def msg(user: str, kind: str, minute: int, **fields: Any) -> tuple[bytes, bytes, int]:
    ts = T0 + minute * 60_000
    value = json.dumps({"user_id": user, "type": kind, "ts": ts, **fields}).encode()
    return user.encode(), value, ts


@pytest.fixture(autouse=True)
async def _drop_keys(isolated: Settings) -> AsyncIterator[None]:
    yield
    await drop_prefix(isolated)


def history() -> list[tuple[bytes, bytes, int]]:
    out = [msg("ann", "impression", i, offer_id="OFF-TV", channel="web") for i in range(3)]
    out += [msg("bob", "dismiss", 10 + i, offer_id="OFF-TV", channel="app") for i in range(3)]
    out += [msg("bob", "impression", 20, offer_id="OFF-TV", channel="ad")]
    out += [msg("cem", "click", 21, offer_id="OFF-TV", channel="email")]
    out += [msg("cem", "search", 22, query="fernseher reparatur")]
    for i, (user, rating) in enumerate([("ann", 5), ("bob", 4), ("cem", 4), ("dan", 2)]):
        out.append(msg(user, "review", 30 + i, item_id="SKU-TV", rating=rating))
    out.append(msg("dan", "review", 40, item_id="SKU-MOUNT"))  # a review without a rating
    return out


async def counters(settings: Settings) -> tuple[dict[str, OfferStats], dict[str, ItemRating]]:
    client = client_for(settings)
    try:
        store = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
        return await store.offer_stats(["OFF-TV"]), await store.ratings(["SKU-TV", "SKU-MOUNT"])
    finally:
        await close(client)


async def test_feedback_flows_through_kafka_and_replays_count_once(
    isolated: Settings, worker: Callable[..., Any], caught_up: Callable[..., Awaitable[None]]
) -> None:
    await produce(isolated, history())
    first = worker(isolated)
    await caught_up(isolated, first)

    # Exposure per user, in the profile: 3 web impressions cap the offer on any channel.
    client = client_for(isolated)
    try:
        profiles = ProfileStore(client, isolated.redis_prefix, ttl_s=3600)
        ann, bob = await profiles.get("ann"), await profiles.get("bob")
    finally:
        await close(client)
    assert ann is not None and bob is not None
    now = NOW_MS / 1000
    assert ann.impressions("OFF-TV", now, DAY_S) == 3  # shown on web, counted for the ad server
    assert bob.dismissals("OFF-TV", now, 7 * DAY_S) == 3
    assert bob.impressions("OFF-TV", now, DAY_S) == 1

    # Aggregates over all users, summed over partitions.
    stats, ratings = await counters(isolated)
    assert stats == {"OFF-TV": OfferStats(impressions=4, clicks=1, dismissals=3)}
    assert ratings == {
        "SKU-TV": ItemRating(count=4, mean=3.75),
        "SKU-MOUNT": ItemRating(count=0, mean=0.0),
    }
    assert first.stop() == 0
    before = await read_profiles(isolated)

    # A new consumer group replays the whole topic from offset 0 into the same Redis.
    again = isolated.model_copy(update={"consumer_group": f"{isolated.consumer_group}-replay"})
    second = worker(again)
    await caught_up(again, second)
    assert second.stop() == 0
    assert await counters(isolated) == (stats, ratings)
    assert await read_profiles(isolated) == before
