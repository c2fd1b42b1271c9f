"""A client that retries counts once: POST /v1/events -> Kafka -> worker -> Redis, with repeats.

The same batch is half produced (a request that failed midway), then posted three times with
the ids the API returned; every profile and counter must be what one clean pass gives.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.kafka import EventProducer
from recommender.adapters.redis_store import connect
from recommender.core.events import validate_event
from recommender.core.settings import Settings
from tests.api.support import ServeFactory
from tests.stream.test_stream_worker import assert_profiles_are_the_offline_replay, drop_prefix

pytestmark = pytest.mark.integration


def a_batch(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` events of 6 users, one in three with the caller's own event_id."""
    rng = random.Random(seed)
    start = int(time.time() * 1000) - 3_600_000
    out: list[dict[str, Any]] = []
    for i in range(n):
        event: dict[str, Any] = {"user_id": f"retry-{rng.randrange(6)}", "ts": start + i * 1000}
        kind = rng.choice(["page_view", "search", "click", "add_to_cart"])
        event["type"] = kind
        if kind == "search":
            event["query"] = rng.choice(["tv repair", "soundbar"])
        elif kind == "click":
            event["offer_id"] = f"offer-{rng.randrange(3)}"
        else:
            event["item_id"] = f"item-{rng.randrange(10)}"
        if i % 3 == 0:
            event["event_id"] = f"client-{seed}-{i}"
        out.append(event)
    return out


async def test_a_batch_sent_again_and_again_counts_once(
    isolated: Settings,
    fake_engine: object,
    serve_app: ServeFactory,
    worker: Callable[..., Any],
    caught_up: Callable[..., Awaitable[None]],
) -> None:
    batch = a_batch(60, seed=3)
    proc = worker(isolated)
    try:
        async with serve_app(isolated, engine=fake_engine) as client:
            first = await client.post("/v1/events", json=batch)
            assert first.status_code == 202
            ids = first.json()["event_ids"]
            assert [e.get("event_id", i) for e, i in zip(batch, ids, strict=True)] == ids
            retry = [{**e, "event_id": i} for e, i in zip(batch, ids, strict=True)]
            # A request that failed halfway through producing, then two more retries.
            async with EventProducer(isolated.kafka_bootstrap, isolated.events_topic) as producer:
                await producer.send_many([validate_event(e) for e in retry[:25]])
            for _ in range(2):
                again = await client.post("/v1/events", json=retry)
                assert again.status_code == 202 and again.json()["event_ids"] == ids
        await caught_up(isolated, proc, timeout_s=90)

        await assert_profiles_are_the_offline_replay(isolated, retry)
        client_ = connect(isolated.redis_url)
        try:
            feedback = FeedbackStore(client_, isolated.redis_prefix, isolated.topic_partitions)
            stats = await feedback.offer_stats([f"offer-{i}" for i in range(3)])
        finally:
            await client_.aclose()
        clicks = {f"offer-{i}": 0 for i in range(3)}
        for event in batch:
            if event["type"] == "click":
                clicks[event["offer_id"]] += 1
        assert {offer: s.clicks for offer, s in stats.items()} == clicks
        assert proc.stop() == 0
        assert f"consumed={60 * 3 + 25} applied=60 replayed=0" in proc.log_text()
    finally:
        await drop_prefix(isolated)
