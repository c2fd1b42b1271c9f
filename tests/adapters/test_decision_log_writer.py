"""DecisionLog's buffering (a fake producer: this is the writer's own logic, not Kafka's):
answers never wait, failures and overflow are counted, nothing is sent twice."""

from __future__ import annotations

import asyncio
from typing import Any

from recommender.adapters.kafka import DecisionLog
from recommender.core.decision_log import LoggedDecision


class FakeProducer:
    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail_every = fail_every

    async def send_raw(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, value, key))
        if self.fail_every and len(self.sent) % self.fail_every == 0:
            future.set_exception(ConnectionError("broker gone"))
        else:
            future.set_result(None)
        await asyncio.sleep(0)
        return future


def entries(n: int, start: int = 0) -> list[LoggedDecision]:
    return [LoggedDecision(f"d{i}", f"u{i}", 1.0, ()) for i in range(start, start + n)]


async def test_writes_are_sent_in_order_once_and_failures_counted() -> None:
    producer = FakeProducer(fail_every=10)
    lost: list[int] = []
    writer = DecisionLog(producer, "zmot.decisions", lost.append)  # type: ignore[arg-type]
    for i in range(5):
        writer.write(entries(20, start=20 * i))  # returns at once, sent in the background
    await writer.drain()
    assert [key for _, _, key in producer.sent] == [f"u{i}".encode() for i in range(100)]
    assert {topic for topic, _, _ in producer.sent} == {"zmot.decisions"}
    assert sum(lost) == 10
    assert LoggedDecision.from_json(producer.sent[3][1]).decision_id == "d3"


async def test_a_full_buffer_drops_and_counts_instead_of_growing() -> None:
    producer = FakeProducer()
    lost: list[int] = []
    writer = DecisionLog(producer, "t", lost.append, max_buffer=30)  # type: ignore[arg-type]
    writer.write(entries(20))
    writer.write(entries(20, start=20))  # would exceed 30 before the flusher ran: dropped
    writer.write(entries(10, start=40))
    await writer.drain()
    assert lost == [20] and len(producer.sent) == 30
