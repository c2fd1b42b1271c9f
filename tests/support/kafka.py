"""Kafka waits of the integration tests: a topic's partitions, a consumer group's lag, and
waiting until a worker's group has committed the whole events topic.

The ``caught_up`` fixture (imported by the root conftest) gives tests :func:`wait_caught_up`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from recommender.adapters.kafka import group_lag as kafka_group_lag
from recommender.adapters.kafka import kafka_auth
from recommender.core.settings import Settings
from tests.support.processes import WorkerProcess


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` (describe, so that no metadata request auto-creates it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def group_lag(settings: Settings) -> dict[int, int]:
    """Messages per partition of the events topic not yet committed by the consumer group."""
    lag = await kafka_group_lag(
        settings.kafka_bootstrap,
        settings.consumer_group,
        settings.events_topic,
        auth=kafka_auth(settings),
    )
    return {p: end - (committed or 0) for p, (end, committed) in lag.items()}


async def wait_caught_up(
    settings: Settings, proc: WorkerProcess | None = None, timeout_s: float = 60.0
) -> None:
    """Return once the group has committed the whole events topic; fail on timeout or crash."""
    deadline = time.monotonic() + timeout_s
    lag: dict[int, int] = {}
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive:
            raise AssertionError(f"worker exited with {proc.proc.returncode} before catching up")
        lag = await group_lag(settings)
        if lag and not any(lag.values()):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"worker not caught up after {timeout_s} s, lag per partition {lag}")


@pytest.fixture
def caught_up() -> Callable[..., Awaitable[None]]:
    """``await caught_up(settings, proc=None, timeout_s=60)``: see :func:`wait_caught_up`."""
    return wait_caught_up
