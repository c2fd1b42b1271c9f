"""Where a partition starts, and how a worker notices that Redis went back under it."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from recommender.core.feedback import PartitionUpdate
from stream.offsets import AppliedOffsets, RedisLostWritesError, start_offset


def test_start_is_the_lower_of_committed_and_applied_plus_one() -> None:
    assert start_offset(100, 99) == 100  # in step
    assert start_offset(100, 49) == 50  # Redis lost 50 messages: re-read them
    assert start_offset(100, None) == 0  # Redis wiped: the whole log
    assert start_offset(100, 150) == 100  # never forward past what Kafka would re-deliver


class FakeFeedback:
    def __init__(self, offsets: dict[int, int | None]) -> None:
        self.stored = offsets

    async def offsets(self, partitions: list[int]) -> dict[int, int | None]:
        return {p: self.stored.get(p) for p in partitions}


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """faust's consumer surface: assignment, position (the committed offset), seek."""

    def __init__(self, committed: dict[int, int]) -> None:
        self.committed = committed
        self.seeks: dict[int, int] = {}

    def assignment(self) -> set[TP]:
        return {TP("ev", p) for p in self.committed} | {TP("other", 0)}

    async def position(self, tp: Any) -> int:
        return self.committed[tp.partition]

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks[tp.partition] = offset


async def test_assignment_seeks_back_only_where_redis_is_behind() -> None:
    applied = AppliedOffsets(FakeFeedback({0: 9, 1: 3}), "ev")  # type: ignore[arg-type]
    consumer = FakeConsumer({0: 10, 1: 10, 2: 10})
    moved = await applied.on_assigned(consumer)
    assert consumer.seeks == {1: 4, 2: 0}
    assert moved == {1: (10, 4), 2: (10, 0)}
    assert applied.known == {0: 9, 1: 3}


async def test_a_lower_or_missing_applied_offset_is_lost_writes() -> None:
    applied = AppliedOffsets(FakeFeedback({}), "ev")  # type: ignore[arg-type]
    applied.wrote([PartitionUpdate(0, None, 41, {}), PartitionUpdate(1, 7, 12, {})])
    applied.check({0: 41, 1: 20, 2: None})  # in step, moved on (another writer), unknown
    assert applied.known == {0: 41, 1: 20}
    with pytest.raises(RedisLostWritesError, match="partition 0's applied offset is 40"):
        applied.check({0: 40})
    with pytest.raises(RedisLostWritesError, match="gone"):
        applied.check({1: None})


async def test_the_watch_reads_redis_for_the_owned_partitions() -> None:
    feedback = FakeFeedback({0: 5})
    applied = AppliedOffsets(feedback, "ev")  # type: ignore[arg-type]
    await applied.watch()  # owns nothing yet
    applied.wrote([PartitionUpdate(0, None, 5, {})])
    await applied.watch()
    feedback.stored.clear()  # FLUSHALL
    with pytest.raises(RedisLostWritesError):
        await applied.watch()
