"""Feedback counters in the real Redis: fenced per-partition adds, driven by the batch logic."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.redis_client import client_for, close
from recommender.adapters.redis_store import ProfileStore
from recommender.core.feedback import CounterKey, ItemRating, OfferStats, PartitionUpdate
from recommender.core.replay import Profiler
from recommender.core.settings import Settings
from stream.batch import process_batch
from stream.dead_letters import DeadLetter
from stream.records import Record
from tests.support.profiles import stored_profiles

pytestmark = pytest.mark.integration

T0 = 1_750_000_000_000  # epoch ms
H = 3600.0


def rec(partition: int, offset: int, user: str, kind: str, ts_ms: int = T0, **f: Any) -> Record:
    data = {"user_id": user, "type": kind, "ts": ts_ms, **f}
    return Record(
        "zmot.events.fb", partition, offset, None, user.encode(), json.dumps(data).encode()
    )


async def no_letters(letters: Sequence[DeadLetter]) -> None:
    pass


class Stores:
    def __init__(self, profiles: ProfileStore, feedback: FeedbackStore) -> None:
        self.profiles, self.feedback = profiles, feedback

    async def batch(self, records: list[Record], **kw: Any) -> Any:
        return await process_batch(
            records,
            profiler=Profiler(),
            store=self.profiles,
            dead_letter=no_letters,
            feedback=self.feedback,
            **kw,
        )

    async def state(self) -> tuple[object, ...]:
        """Profiles, counter fences and the counters of the offers and items of the records."""
        feedback = self.feedback
        return (
            await stored_profiles(self.profiles),
            await feedback.offsets(range(feedback.partitions)),
            await feedback.offer_stats(["O1", "O2"]),
            await feedback.ratings(["SKU-1"]),
        )


@pytest.fixture
async def stores(stack: Settings) -> AsyncIterator[Stores]:
    client = client_for(stack)
    prefix = f"zmot:fb-{uuid.uuid4().hex[:10]}:"
    yield Stores(ProfileStore(client, prefix, ttl_s=3600), FeedbackStore(client, prefix, 4))
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await close(client)


def feedback_records() -> list[Record]:
    """Two partitions; offsets as Kafka would give them."""
    return [
        rec(0, 0, "u1", "impression", offer_id="O1", channel="web"),
        rec(0, 1, "u1", "impression", offer_id="O1", channel="ad"),
        rec(0, 2, "u1", "click", offer_id="O1"),
        rec(1, 0, "u2", "impression", offer_id="O1", channel="email"),
        rec(1, 1, "u2", "dismiss", offer_id="O2"),
        rec(1, 2, "u2", "review", item_id="SKU-1", rating=5),
        rec(0, 3, "u3", "review", item_id="SKU-1", rating=2),
        rec(0, 4, "u3", "page_view", item_id="SKU-1"),
    ]


async def test_batch_counts_offer_stats_and_ratings_over_partitions(stores: Stores) -> None:
    await stores.batch(feedback_records())
    stats = await stores.feedback.offer_stats(["O1", "O2", "O3"])
    assert stats == {
        "O1": OfferStats(impressions=3, clicks=1, dismissals=0),
        "O2": OfferStats(impressions=0, clicks=0, dismissals=1),
        "O3": OfferStats(),
    }
    assert await stores.feedback.ratings(["SKU-1", "SKU-2"]) == {
        "SKU-1": ItemRating(count=2, mean=3.5),
        "SKU-2": ItemRating(count=0, mean=0.0),
    }
    assert await stores.feedback.offsets([0, 1, 2]) == {0: 4, 1: 2, 2: None}
    u1 = await stores.profiles.get("u1")
    assert u1 is not None and u1.impressions("O1", T0 / 1000, 24 * H) == 2


async def test_redelivered_and_overlapping_batches_count_once(stores: Stores) -> None:
    records = feedback_records()
    await stores.batch(records[:4])  # p0: 0..2, p1: 0
    before = await stores.state()
    await stores.batch(records[:4])  # the same batch again: nothing changes
    assert await stores.state() == before
    # Redelivery from an earlier commit, reaching past what was counted, split differently.
    await stores.batch([records[1], records[2], records[3], records[4]])
    await stores.batch(records)
    await stores.batch(records[2:] + [rec(0, 5, "u3", "click", offer_id="O2")])
    stats = await stores.feedback.offer_stats(["O1", "O2"])
    assert stats == {"O1": OfferStats(3, 1, 0), "O2": OfferStats(0, 1, 1)}
    assert (await stores.feedback.ratings(["SKU-1"]))["SKU-1"] == ItemRating(2, 3.5)


class RivalFeedback(FeedbackStore):
    """Another worker counts the partition's next message just before each of our writes."""

    def __init__(self, base: FeedbackStore, rival: list[Record], rounds: int) -> None:
        super().__init__(base.client, base.prefix, base.partitions)
        self.rival, self.rounds = rival, rounds

    async def apply(self, updates: Sequence[PartitionUpdate]) -> list[int]:
        if self.rounds:
            self.rounds -= 1
            record = self.rival.pop(0)
            counted = (await self.offsets([record.partition]))[record.partition]
            clicks = {CounterKey("clicks", "O1"): 1}
            other = PartitionUpdate(record.partition, counted, record.offset, clicks)
            assert await FeedbackStore.apply(self, [other]) == []
        return await FeedbackStore.apply(self, updates)


async def test_a_concurrent_counter_write_is_detected_and_recounted(stores: Stores) -> None:
    clicks = [rec(0, i, "u1", "click", offer_id="O1") for i in range(4)]
    rival = RivalFeedback(stores.feedback, list(clicks[:2]), rounds=2)
    stats = await process_batch(
        clicks, profiler=Profiler(), store=stores.profiles, dead_letter=no_letters, feedback=rival
    )
    assert stats.conflicts == 2
    assert (await stores.feedback.offer_stats(["O1"]))["O1"].clicks == 4
    assert await stores.feedback.offsets([0]) == {0: 3}


async def test_dead_letters_move_the_fence_but_count_nothing(stores: Stores) -> None:
    bad = Record("zmot.events.fb", 0, 1, None, b"u1", b"{not json")
    letters: list[DeadLetter] = []

    async def sink(batch: Sequence[DeadLetter]) -> None:
        letters.extend(batch)

    records = [rec(0, 0, "u1", "click", offer_id="O1"), bad]
    await process_batch(
        records,
        profiler=Profiler(),
        store=stores.profiles,
        dead_letter=sink,
        feedback=stores.feedback,
    )
    assert len(letters) == 1
    assert (await stores.feedback.offer_stats(["O1"]))["O1"] == OfferStats(0, 1, 0)
    assert await stores.feedback.offsets([0]) == {0: 1}


async def test_a_redelivered_dead_letter_below_the_fence_is_not_sent_again(
    stores: Stores,
) -> None:
    """Letters go out before ``_off`` moves past them, so one below ``_off`` was delivered."""
    letters: list[DeadLetter] = []

    async def sink(batch: Sequence[DeadLetter]) -> None:
        letters.extend(batch)

    def bad(offset: int) -> Record:
        return Record("zmot.events.fb", 0, offset, None, b"u1", b"{not json")

    first = [rec(0, 0, "u1", "click", offer_id="O1"), bad(1)]
    again = [*first, bad(2), rec(0, 3, "u1", "click", offer_id="O1")]  # read again, and more
    for batch in (first, again):
        await process_batch(
            batch,
            profiler=Profiler(),
            store=stores.profiles,
            dead_letter=sink,
            feedback=stores.feedback,
        )
    assert [letter.record.offset for letter in letters] == [1, 2]
    assert await stores.feedback.offsets([0]) == {0: 3}


async def test_empty_requests_need_no_round_trip(stores: Stores) -> None:
    assert await stores.feedback.offer_stats([]) == {}
    assert await stores.feedback.ratings([]) == {}
