"""DecisionLog's buffering (a fake producer: this is the writer's own logic, not Kafka's):
answers never wait, decisions of several answers share a record within the size caps,
failures and overflow are counted per decision, nothing is sent twice or lost at drain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from recommender.adapters.kafka import MAX_RECORD_BYTES, DecisionLog
from recommender.core.decision_log import LoggedDecision, LoggedSlot, decode_record
from recommender.core.errors import ConfigError


class FakeProducer:
    def __init__(self, fail_every: int = 0, raise_on: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.fail_every = fail_every
        self.raise_on = raise_on
        self.calls = 0

    async def send_raw(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[Any]:
        self.calls += 1
        if self.calls == self.raise_on:
            raise ConnectionError("producer closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, value, key))
        if self.fail_every and len(self.sent) % self.fail_every == 0:
            future.set_exception(ConnectionError("broker gone"))
        else:
            future.set_result(None)
        await asyncio.sleep(0)
        return future

    def decisions(self) -> list[LoggedDecision]:
        out: list[LoggedDecision] = []
        for _, value, _ in self.sent:
            found, bad = decode_record(value)
            assert bad == []
            out.extend(found)
        return out


def entries(n: int, start: int = 0) -> list[LoggedDecision]:
    return [LoggedDecision(f"d{i}", f"u{i}", 1.0, ()) for i in range(start, start + n)]


def writer_of(producer: FakeProducer, lost: list[int], **options: Any) -> DecisionLog:
    return DecisionLog(producer, "zmot.decisions", lost.append, **options)  # type: ignore[arg-type]


async def test_answers_of_the_linger_share_one_unkeyed_record_in_order() -> None:
    producer = FakeProducer()
    lost: list[int] = []
    writer = writer_of(producer, lost, linger_ms=50)
    for i in range(5):
        writer.write(entries(3, start=3 * i))  # returns at once: nothing sent yet
        assert producer.sent == []
        await asyncio.sleep(0.001)  # the answers' own awaits
    await writer.drain()
    assert len(producer.sent) == 1
    topic, value, key = producer.sent[0]
    assert topic == "zmot.decisions" and key is None
    assert value == b"\n".join(e.to_json() for e in entries(15))  # JSON lines, answer order
    assert [d.decision_id for d in producer.decisions()] == [f"d{i}" for i in range(15)]
    assert lost == []


async def test_records_stay_within_the_entry_and_byte_caps() -> None:
    producer = FakeProducer()
    lost: list[int] = []
    writer = writer_of(producer, lost, linger_ms=0, max_record_entries=7)
    writer.write(entries(50))
    await writer.drain()
    assert [value.count(b"\n") + 1 for _, value, _ in producer.sent] == [7] * 7 + [1]
    assert [d.decision_id for d in producer.decisions()] == [f"d{i}" for i in range(50)]

    big = [
        LoggedDecision(f"b{i}", "u", 1.0, (LoggedSlot("o" * 900, "i", "greedy", 1.0),))
        for i in range(10)
    ]
    one = len(big[0].to_json())
    cap = 3 * one + 2  # three entries and their two newlines fit, not four
    records = writer_of(producer, lost, max_record_bytes=cap).records(big)
    assert [count for _, count in records] == [3, 3, 3, 1]
    assert all(len(value) <= cap for value, _ in records)
    alone = writer_of(producer, lost, max_record_bytes=one // 2).records(big[:2])
    assert [count for _, count in alone] == [1, 1]  # larger than the cap: each on its own
    assert MAX_RECORD_BYTES <= 512 * 1024  # well under Kafka's default 1 MiB message size


async def test_failed_records_count_every_decision_they_carried() -> None:
    producer = FakeProducer(fail_every=2)
    lost: list[int] = []
    writer = writer_of(producer, lost, linger_ms=0, max_record_entries=10)
    writer.write(entries(40))  # four records; the broker refuses the 2nd and the 4th
    await writer.drain()
    assert sum(lost) == 20 and len(producer.sent) == 4

    raising = FakeProducer(raise_on=2)
    lost = []
    writer = writer_of(raising, lost, linger_ms=0, max_record_entries=10)
    writer.write(entries(40))  # the 2nd send raises: its 10 decisions lost, the rest sent
    await writer.drain()
    assert sum(lost) == 10
    assert len(raising.decisions()) == 30


async def test_a_full_buffer_drops_and_counts_instead_of_growing() -> None:
    producer = FakeProducer()
    lost: list[int] = []
    writer = writer_of(producer, lost, max_buffer=30)
    writer.write(entries(20))
    writer.write(entries(20, start=20))  # would exceed 30 before the flusher ran: dropped
    writer.write(entries(10, start=40))
    await writer.drain()
    assert lost == [20] and len(producer.decisions()) == 30


async def test_drain_sends_everything_written_while_sending() -> None:
    producer = FakeProducer()
    lost: list[int] = []
    writer = writer_of(producer, lost, linger_ms=1)

    async def answers() -> None:
        for i in range(200):
            writer.write(entries(1, start=i))
            await asyncio.sleep(0 if i % 3 else 0.0005)

    await answers()
    await writer.drain()
    assert [d.decision_id for d in producer.decisions()] == [f"d{i}" for i in range(200)]
    assert 1 < len(producer.sent) < 200 and lost == []


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="max_record_entries"):
        DecisionLog(FakeProducer(), "t", print, max_record_entries=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="linger_ms"):
        DecisionLog(FakeProducer(), "t", print, linger_ms=-1)  # type: ignore[arg-type]
