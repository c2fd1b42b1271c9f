"""``POST /v1/events`` against the real broker: accepted events are in the topic, rejected
batches leave nothing there."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from api.deps import MAX_BATCH
from recommender.core.events import Event, parse_event
from recommender.core.settings import Settings
from tests.api.support import FailingSink, ServeFactory, TopicReader

pytestmark = pytest.mark.integration

VIEW = {"user_id": "u1", "type": "page_view", "item_id": "tv-1", "ts": "2025-11-23T10:00:00Z"}
SEARCH = {"user_id": "u2", "type": "search", "query": "fernseher reparatur", "ts": 1763892001000}


async def test_one_event_is_produced_keyed_by_user(
    client: httpx.AsyncClient, isolated: Settings, read_topic: TopicReader
) -> None:
    response = await client.post("/v1/events", json=VIEW)
    assert response.status_code == 202
    [event_id] = response.json()["event_ids"]
    assert response.json() == {"accepted": 1, "event_ids": [event_id]}
    assert re.fullmatch("[0-9a-f]{32}", event_id)
    records = await read_topic(isolated)
    assert len(records) == 1
    key, value = records[0]
    assert key == b"u1"
    assert parse_event(value) == parse_event(json.dumps({**VIEW, "event_id": event_id}))


async def test_a_batch_is_produced_whole(
    client: httpx.AsyncClient, isolated: Settings, read_topic: TopicReader
) -> None:
    batch = [VIEW, {**SEARCH, "event_id": "mine-1"}, {**VIEW, "type": "add_to_cart"}]
    response = await client.post("/v1/events", json=batch)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 3 and body["event_ids"][1] == "mine-1"
    assert len(set(body["event_ids"])) == 3  # the API gave the other two their own
    records = await read_topic(isolated)
    got = sorted((k, parse_event(v).type, parse_event(v).event_id) for k, v in records)
    ids = body["event_ids"]
    assert got == sorted(
        [(b"u1", "page_view", ids[0]), (b"u2", "search", "mine-1"), (b"u1", "add_to_cart", ids[2])]
    )


async def test_invalid_batch_names_index_and_field_and_produces_nothing(
    client: httpx.AsyncClient, isolated: Settings, read_topic: TopicReader
) -> None:
    batch = [
        VIEW,
        SEARCH,
        VIEW,
        {"user_id": "u3", "type": "page_view"},
        SEARCH,
        {"user_id": "u4", "type": "click"},
    ]
    response = await client.post("/v1/events", json=batch)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {"index": 3, "field": "item_id", "reason": "item_id is required for page_view events"},
            {"index": 5, "field": "offer_id", "reason": "offer_id is required for click events"},
        ]
    }
    assert await read_topic(isolated) == []
    # The reader does see what is produced: a valid event after the rejected batch is alone.
    assert (await client.post("/v1/events", json=SEARCH)).status_code == 202
    assert [k for k, _ in await read_topic(isolated)] == [b"u2"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"this is not json", "body is not JSON"),
        (b"[]", "empty batch: send at least one event"),
        (b'{"user_id": "", "type": "search", "query": "tv"}', "at least 1 character"),
    ],
)
async def test_bad_bodies_are_422_and_produce_nothing(
    client: httpx.AsyncClient,
    isolated: Settings,
    read_topic: TopicReader,
    content: bytes,
    reason: str,
) -> None:
    response = await client.post(
        "/v1/events", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    [item] = response.json()["detail"]
    assert reason in item["reason"]
    assert item["index"] is None
    assert await read_topic(isolated) == []


async def test_batch_over_the_limit_is_413(
    client: httpx.AsyncClient, isolated: Settings, read_topic: TopicReader
) -> None:
    batch = [{"user_id": f"u{i}", "type": "search", "query": "tv"} for i in range(MAX_BATCH + 1)]
    response = await client.post("/v1/events", json=batch)
    assert response.status_code == 413
    assert str(MAX_BATCH) in response.json()["detail"]
    assert await read_topic(isolated) == []


async def test_body_over_the_byte_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events",
        content=b" " * (17 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "error", [KafkaConnectionError("broker gone"), KafkaTimeoutError()], ids=["conn", "timeout"]
)
async def test_kafka_down_is_503_with_a_clear_message(
    isolated: Settings, fake_engine: object, serve_app: ServeFactory, error: Exception
) -> None:
    async with serve_app(isolated, engine=fake_engine, producer=FailingSink(error)) as client:
        response = await client.post("/v1/events", json=VIEW)
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(isolated.retry_after_s)
    body = response.json()
    assert body["detail"].startswith("event log (Kafka) unavailable")
    assert "send them again with these event_ids" in body["detail"]
    assert len(body["event_ids"]) == 1


class HangingSink:
    """A producer whose broker never answers."""

    async def send_many(self, events: Sequence[Event]) -> None:
        await asyncio.sleep(3600)


async def test_a_broker_that_does_not_answer_is_503_within_the_produce_timeout(
    isolated: Settings, fake_engine: object, serve_app: ServeFactory
) -> None:
    settings = isolated.model_copy(update={"produce_timeout_s": 0.3})
    async with serve_app(settings, engine=fake_engine, producer=HangingSink()) as client:
        started = time.monotonic()
        response = await client.post("/v1/events", json=[VIEW, {**SEARCH, "event_id": "s-1"}])
        elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert elapsed < 0.3 + 5.0  # bounded by the timeout, not by the broker (an hour here)
    assert "no acknowledgement in time" in response.json()["detail"]
    assert response.json()["event_ids"][1] == "s-1"
    assert response.headers["retry-after"] == "5"
