"""The Kafka producer that the API and ``zmot replay`` share: key = user_id, value = event JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from recommender.errors import ConfigError
from recommender.events import Event


class EventProducer:
    """Produces validated events so that one user's events stay ordered in one partition."""

    def __init__(self, bootstrap: str, topic: str, *, linger_ms: int = 5) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=linger_ms,
            enable_idempotence=True,
            request_timeout_ms=15000,
        )
        self._bootstrap = bootstrap

    async def start(self) -> None:
        """Connect; a wrong bootstrap address fails here with a clear message."""
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise ConfigError(
                f"Kafka is not reachable at {self._bootstrap} ({exc}); check ZMOT_KAFKA_BOOTSTRAP"
            ) from exc

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_many(self, events: Sequence[Event]) -> None:
        """Produce all events and wait until the broker acknowledged every one."""
        futures = [
            await self._producer.send(self.topic, e.to_json(), key=e.user_id.encode())
            for e in events
        ]
        await asyncio.gather(*futures)

    async def send_raw(self, key: bytes | None, value: bytes) -> None:
        """Produce bytes as they are (tests and tools that need malformed input)."""
        await (await self._producer.send(self.topic, value, key=key))

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def group_lag(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, int | None]]:
    """Per partition of ``topic``: (end offset, offset committed by ``group`` or None).

    Read from the broker, not reported by the worker, so a dead worker shows growing lag.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # topic may be new to this client
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps) if tps else {}
        committed = await committed_offsets(admin, group, tps)
        out: dict[int, tuple[int, int | None]] = {}
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            out[tp.partition] = (ends[tp], offset)
        return out
    finally:
        await consumer.stop()
        await admin.close()


async def committed_offsets(admin: Any, group: str, tps: list[Any] | None = None) -> dict[Any, Any]:
    """The group's committed offsets, waiting out a coordinator that is still loading.

    A fresh broker creates ``__consumer_offsets`` on the first group request, and until its
    coordinator is up the broker answers "not available": that is a wait, not an error.
    """
    from aiokafka.errors import (
        CoordinatorLoadInProgressError,
        GroupCoordinatorNotAvailableError,
        NotCoordinatorForGroupError,
    )

    transient = (
        GroupCoordinatorNotAvailableError,
        CoordinatorLoadInProgressError,
        NotCoordinatorForGroupError,
    )
    for attempt in range(60):
        try:
            result: dict[Any, Any] = await admin.list_consumer_group_offsets(group, partitions=tps)
            return result
        except transient:
            if attempt == 59:
                raise
            await asyncio.sleep(0.5)
    return {}


def total_lag(lag: dict[int, tuple[int, int | None]]) -> int:
    """Messages not yet committed; a partition never committed counts its whole log."""
    return sum(end - (committed or 0) for end, committed in lag.values())
