"""Where the worker starts each partition: Redis's applied offset, not only Kafka's committed one.

Kafka is the source of truth and Redis a view of it. The view records how far it got: each
partition's counter hash keeps ``_off``, the last offset whose profiles and counters are
written (:func:`stream.batch.process_batch` writes it after the profiles). Kafka's committed
offset says how far the worker *read*; if Redis then lost writes (a restart within its AOF
fsync window, a failover to a lagging replica, a wiped instance), the two disagree, and only
Redis's own offset says what is missing. So after faust seeks each assigned partition to its
committed offset, :meth:`AppliedOffsets.on_assigned` moves it back to ``_off + 1`` when that is
lower (to the start of the log when Redis has no ``_off``: a wiped Redis rebuilds from the
topic's retention). What was applied before is skipped by the per-profile and per-partition
fences, so going back is always safe, only slower; it never moves forward, so a message read
but not yet written (a crash between the two) is read again either way.

While it runs, the worker also remembers the ``_off`` it last wrote or read per partition:
a read that finds it lower (or gone) means Redis went back under a running worker, and
:class:`RedisLostWritesError` stops the worker before it writes anything on top of the hole
(its profiles would otherwise be rebuilt from the wrong base); the next start repairs.
:meth:`AppliedOffsets.watch` does the same check every few seconds on an idle worker, so a
FLUSHALL is noticed without traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from redis.exceptions import RedisError

from recommender.adapters.feedback_store import FeedbackStore
from recommender.core.errors import ZmotError
from recommender.core.feedback import PartitionUpdate

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 5.0
"""How often an idle worker checks that Redis still holds the offsets it wrote."""


class RedisLostWritesError(ZmotError):
    """Redis no longer holds writes this worker made: restart to re-read what is missing."""


def start_offset(position: int, applied: int | None) -> int:
    """Where to read a partition from: Kafka's ``position`` (the committed offset), or earlier
    when Redis applied less (``applied`` = its ``_off``, None when Redis has none)."""
    if applied is None:
        return 0
    return min(position, applied + 1)


class AppliedOffsets:
    """The applied offset (``_off``) of each partition of ``topic`` this worker owns."""

    def __init__(self, feedback: FeedbackStore, topic: str) -> None:
        self.feedback = feedback
        self.topic = topic
        self.known: dict[int, int] = {}
        """partition -> the highest ``_off`` this worker read or wrote for it."""

    async def on_assigned(self, consumer: Any) -> dict[int, tuple[int, int]]:
        """Seek the assigned partitions back to Redis's applied offsets where Kafka's committed
        ones are ahead; returns partition -> (committed position, new start) for those moved.

        Called after faust's own seek to the committed offsets. When Redis cannot be read the
        committed offsets stand (the first batch then fails on Redis as it would anyway).
        """
        tps = sorted(
            (tp for tp in consumer.assignment() if tp.topic == self.topic),
            key=lambda tp: tp.partition,
        )
        self.known.clear()
        if not tps:
            return {}
        try:
            applied = await self.feedback.offsets([tp.partition for tp in tps])
        except (RedisError, OSError) as exc:
            log.warning("cannot read the applied offsets from Redis (%s); using Kafka's", exc)
            return {}
        moved: dict[int, tuple[int, int]] = {}
        for tp in tps:
            mark = applied[tp.partition]
            if mark is not None:
                self.known[tp.partition] = mark
            position = await consumer.position(tp)
            if position is None:
                continue
            start = start_offset(position, mark)
            if start < position:
                await consumer.seek(tp, start)
                moved[tp.partition] = (position, start)
                log.warning(
                    "partition %d: Redis has applied up to offset %s, Kafka's committed offset "
                    "is %d: re-reading from %d",
                    tp.partition,
                    "none" if mark is None else mark,
                    position,
                    start,
                )
        return moved

    def check(self, counted: Mapping[int, int | None]) -> None:
        """Raise :class:`RedisLostWritesError` when a partition's ``_off`` as just read is
        lower than (or gone from) what this worker wrote or read before."""
        for partition, mark in counted.items():
            before = self.known.get(partition)
            if before is None:
                continue
            if mark is None or mark < before:
                raise RedisLostWritesError(
                    f"Redis went back: partition {partition}'s applied offset is "
                    f"{'gone' if mark is None else mark}, this worker wrote {before}; stopping "
                    "so that the next start re-reads what Redis lost"
                )
            self.known[partition] = mark

    def wrote(self, updates: Iterable[PartitionUpdate]) -> None:
        """Remember the ``_off`` of counter updates just written."""
        for update in updates:
            self.known[update.partition] = update.last_offset

    async def watch(self) -> None:
        """:meth:`check` the owned partitions against Redis now (an unreadable Redis is no
        news: the next batch fails on it anyway)."""
        partitions = sorted(self.known)
        if not partitions:
            return
        try:
            counted = await self.feedback.offsets(partitions)
        except (RedisError, OSError):
            return
        self.check(counted)


def after_committed_seek(consumer: Any, applied: AppliedOffsets) -> None:
    """Make ``consumer`` (faust's) run :meth:`AppliedOffsets.on_assigned` after each of its
    seeks to the committed offsets, which faust does once partitions are assigned, right
    before it resumes fetching."""
    committed_seek = consumer.perform_seek

    async def perform_seek() -> None:
        await committed_seek()
        await applied.on_assigned(consumer)

    consumer.perform_seek = perform_seek
