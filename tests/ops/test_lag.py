"""Lag measured from Kafka: a stopped worker shows 5,000 messages and a growing age, a
running one brings both back to zero (``zmot lag --json`` and ``GET /ops/lag`` agree)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from recommender.core.settings import Settings
from tests.ops.conftest import events, produce, zmot_lag
from tests.support.processes import ApiProcess

pytestmark = pytest.mark.integration

N = 5_000


def api_lag(api: ApiProcess) -> dict[str, Any]:
    response = httpx.get(f"{api.url}/ops/lag", timeout=30)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def check_shape(document: dict[str, Any], settings: Settings) -> None:
    assert set(document) == {"group", "topic", "total_lag", "max_lag_seconds", "partitions"}
    assert document["group"] == settings.consumer_group
    assert document["topic"] == settings.events_topic
    assert [p["partition"] for p in document["partitions"]] == list(
        range(settings.topic_partitions)
    )
    for row in document["partitions"]:
        assert set(row) == {"partition", "end_offset", "committed_offset", "lag", "lag_seconds"}
    assert document["total_lag"] == sum(p["lag"] for p in document["partitions"])


async def test_stopped_worker_shows_lag_in_messages_and_growing_seconds(
    isolated: Settings,
    worker: Callable[..., Any],
    caught_up: Callable[..., Awaitable[None]],
    api_server: Callable[..., ApiProcess],
) -> None:
    settings = isolated.model_copy(update={"lag_refresh_s": 0.2})
    # A worker that has committed something, then stops: the realistic outage.
    first = worker(settings)
    await produce(settings, events(200))
    await caught_up(settings, first)
    assert first.stop() == 0
    api = api_server(settings)

    await produce(settings, events(N))
    cli_1 = zmot_lag(settings)
    api_1 = api_lag(api)
    await asyncio.sleep(1.5)
    cli_2 = zmot_lag(settings)
    api_2 = api_lag(api)

    for document in (cli_1, api_1, cli_2, api_2):
        check_shape(document, settings)
        assert document["total_lag"] == N
        assert all(row["committed_offset"] is not None for row in document["partitions"])
        assert document["max_lag_seconds"] > 0
    # The age of the oldest unprocessed event grows with the wall clock while nobody reads.
    assert cli_2["max_lag_seconds"] >= cli_1["max_lag_seconds"] + 1.0
    assert api_2["max_lag_seconds"] >= api_1["max_lag_seconds"] + 1.0
    # Both read the same offsets from Kafka.
    assert [(p["end_offset"], p["committed_offset"]) for p in cli_2["partitions"]] == [
        (p["end_offset"], p["committed_offset"]) for p in api_2["partitions"]
    ]

    second = worker(settings)
    await caught_up(settings, second)
    deadline = time.monotonic() + 30
    while True:
        cli_3, api_3 = zmot_lag(settings), api_lag(api)
        if cli_3["total_lag"] == 0 and api_3["total_lag"] == 0:
            break
        assert time.monotonic() < deadline, (cli_3, api_3)
        await asyncio.sleep(0.5)
    for document in (cli_3, api_3):
        assert document["max_lag_seconds"] == 0
        assert all(row["lag_seconds"] == 0 for row in document["partitions"])


async def test_a_group_that_never_committed_counts_the_whole_log(isolated: Settings) -> None:
    await produce(isolated, events(30))
    document = zmot_lag(isolated)
    check_shape(document, isolated)
    assert document["total_lag"] == 30
    assert all(row["committed_offset"] is None for row in document["partitions"])
    assert document["max_lag_seconds"] >= 0
