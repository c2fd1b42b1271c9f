"""Kafka at the edges: the producer that the API and ``zmot replay`` share (key = user_id, value =
event JSON), and the reads behind consumer lag (offsets and the oldest unprocessed record)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from recommender.core.errors import ConfigError
from recommender.core.events import Event
from recommender.core.ops import PartitionOffsets, lag_document


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


OLDEST_RECORD_TIMEOUT_S = 2.0
"""Longest wait for the first unprocessed records; a partition not read by then has no age."""


async def read_partition_offsets(
    bootstrap: str, group: str, topic: str, *, timeout_s: float = OLDEST_RECORD_TIMEOUT_S
) -> dict[int, PartitionOffsets]:
    """Per partition of ``topic``: end, committed (by ``group``), beginning offsets and the
    record timestamp of the oldest message ``group`` has not processed.

    The timestamp comes from reading that one record (a consumer without a group, so nothing
    is committed): the lag in seconds is then what Kafka says, not what a worker reports.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=64 * 1024,  # one record per partition is all we need
    )
    try:
        await admin.start()
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # topic may be new to this client
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        beginnings = await consumer.beginning_offsets(tps)
        committed = await committed_offsets(admin, group, tps)
        out: dict[int, PartitionOffsets] = {}
        starts: dict[Any, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            out[tp.partition] = PartitionOffsets(ends[tp], offset, beginnings[tp])
            start = max(offset if offset is not None else beginnings[tp], beginnings[tp])
            if start < ends[tp]:
                starts[tp] = start
        for tp, ts_ms in (await _first_timestamps(consumer, starts, timeout_s)).items():
            old = out[tp.partition]
            out[tp.partition] = PartitionOffsets(old.end, old.committed, old.beginning, ts_ms / 1e3)
        return out
    finally:
        await consumer.stop()
        await admin.close()


async def _first_timestamps(
    consumer: Any, starts: dict[Any, int], timeout_s: float
) -> dict[Any, int]:
    """Record timestamp (ms) of the first record at or after each start offset."""
    if not starts:
        return {}
    consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    found: dict[Any, int] = {}
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(found) < len(starts):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        waiting = [tp for tp in starts if tp not in found]
        batch = await consumer.getmany(*waiting, timeout_ms=int(left * 1000))
        for tp, records in batch.items():
            if records and tp not in found:
                found[tp] = records[0].timestamp
    return found


async def read_lag(
    bootstrap: str, group: str, topic: str, *, now: float | None = None
) -> dict[str, Any]:
    """The lag document of ``group`` on ``topic`` (:func:`recommender.core.ops.lag_document`)."""
    import time

    offsets = await read_partition_offsets(bootstrap, group, topic)
    return lag_document(group, topic, offsets, time.time() if now is None else now)


async def topic_message_count(bootstrap: str, topic: str) -> int:
    """Messages now readable in ``topic`` (end minus beginning offsets); 0 if it does not exist."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return 0
        ends = await consumer.end_offsets(tps)
        beginnings = await consumer.beginning_offsets(tps)
        return sum(ends[tp] - beginnings[tp] for tp in tps)
    finally:
        await consumer.stop()
