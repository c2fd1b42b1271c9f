"""The batch intake's fetch loop (stream/intake.py) against a fake of faust's consumer.

The fake keeps what the loop's correctness depends on: a fetch position per partition that
moves past every record a fetch hands out (as aiokafka's does), committed offsets, and a seek.
The end-to-end proof with real brokers and two workers is ``test_stream_scale.py`` (run with
each intake); these tests pin the rule that caught its stall: a record taken out of the
consumer and not delivered must be read again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stream.intake import drain_in_batches
from stream.records import Record

TOPIC = "zmot.events.unit"


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class Msg:
    tp: TP
    offset: int
    acked: bool = False

    @property
    def topic(self) -> str:
        return self.tp.topic


@dataclass
class Rec:
    """aiokafka's ConsumerRecord, the fields the loop reads."""

    offset: int
    timestamp: int | None = 1_750_000_000_000
    key: bytes | None = b"u"
    value: bytes | None = b"{}"


class _Flag:
    def __init__(self) -> None:
        self.set_ = False

    def is_set(self) -> bool:
        return self.set_


class _Fetcher:
    def __init__(self) -> None:
        self._stopped = _Flag()


class _Topics:
    def acks_enabled_for(self, topic: str) -> bool:
        return True


class _Monitor:
    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        pass


class _App:
    def __init__(self) -> None:
        self.consumer_generation_id = 1
        self.topics = _Topics()
        self.monitor = _Monitor()
        self.should_stop = False


class _Diag:
    def set_flag(self, flag: str) -> None:
        pass

    def unset_flag(self, flag: str) -> None:
        pass


class FakeConsumer:
    """faust's consumer as the fetch loop sees it, over one log per partition."""

    consumer_stopped_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, logs: dict[TP, int]) -> None:
        self.app = _App()
        self.logs = logs  # partition -> number of records (offsets 0..n-1)
        self.positions = dict.fromkeys(logs, 0)
        self.committed: dict[TP, int | None] = dict.fromkeys(logs)
        self._read_offset: dict[TP, int | None] = dict.fromkeys(logs)
        self._stopped = _Flag()
        self.diag = _Diag()
        self._buffered_partitions: set[TP] = set()
        self._commit_every: int | None = None
        self._n_acked = 0
        self.flow_active = True
        self.should_stop = False
        self.fetches = 0
        self.seeks = 0
        self._committed_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._acked_index: dict[TP, set[int]] = defaultdict(set)
        self._acked: dict[TP, list[int]] = defaultdict(list)
        self._waiting_for_ack: asyncio.Future[None] | None = None
        self.during_fetch: Callable[[int], None] = lambda n: None
        """Called inside each fetch with its number (a rebalance starting mid-fetch)."""
        self.tracked: list[Msg] = []
        self.paused: set[TP] = set()

    async def callback(self, message: Msg) -> None:  # pragma: no cover - one topic only
        raise AssertionError("no other topic")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def _wait_next_records(self, timeout: float) -> tuple[dict[TP, list[Rec]], set[TP]]:
        self.fetches += 1
        if self.fetches > 50:
            self._stopped.set_ = True
        self.during_fetch(self.fetches)
        records: dict[TP, list[Rec]] = {}
        for tp, size in self.logs.items():
            start = self.positions[tp]
            if start < size:
                records[tp] = [Rec(offset) for offset in range(start, size)]
                self.positions[tp] = size  # handed out: the position moves past them
        await asyncio.sleep(0)
        return records, set(self.logs) - self.paused

    def highwater(self, tp: TP) -> int:
        return self.logs[tp]

    async def _add_gap(self, tp: TP, start: int, end: int) -> None:
        pass

    def _to_message(self, tp: TP, record: Rec) -> Msg:
        return Msg(tp, record.offset)

    def track_message(self, message: Msg) -> None:
        self.tracked.append(message)

    def ack(self, message: Msg) -> bool:
        """faust's: an offset below the committed one, or acked before, is not counted."""
        message.acked = True
        committed = self._committed_offset[message.tp]
        if committed is not None and message.offset < committed:
            return False
        if message.offset in self._acked_index[message.tp]:
            return False
        self._acked_index[message.tp].add(message.offset)
        self._acked[message.tp].append(message.offset)
        self._n_acked += 1
        return True

    async def commit(self) -> bool:
        return True

    async def perform_seek(self) -> None:
        """Seek to the committed offsets; like aiokafka's, it leaves a partition with nothing
        committed where it is."""
        self.seeks += 1
        for tp in self.logs:
            committed = self.committed[tp]
            if committed:
                self.positions[tp] = committed
            self._read_offset[tp] = committed

    async def seek(self, tp: TP, offset: int) -> None:
        self.positions[tp] = offset
        self._read_offset[tp] = offset or None

    async def position(self, tp: TP) -> int:
        return self.positions[tp]

    def assignment(self) -> set[TP]:
        return set(self.logs)


async def drain(
    consumer: FakeConsumer, batch_size: int, on_batch: Callable[[int], None] = lambda n: None
) -> list[tuple[int, int]]:
    """Run the loop until every record was delivered (or 50 fetches); (partition, offset) of
    each message delivered."""
    delivered: list[tuple[int, int]] = []
    total = sum(consumer.logs.values())

    async def handler(records: Sequence[Record]) -> bool:
        on_batch(len(delivered))
        delivered.extend((record.partition, record.offset) for record in records)
        if len(set(delivered)) >= total:
            consumer._stopped.set_ = True
        return True

    await drain_in_batches(consumer, _Fetcher(), TOPIC, handler, batch_size)
    return delivered


async def test_a_fetch_dropped_while_flow_is_stopped_is_read_again() -> None:
    # A rebalance stops flow while a fetch is in flight; the fetch returns after faust's own
    # seek (the survivor of test_stream_scale: its new partitions' records came back then).
    consumer = FakeConsumer({TP(TOPIC, 0): 30, TP(TOPIC, 1): 20})

    def rebalance(fetch: int) -> None:
        consumer.flow_active = fetch != 1  # stopped during the first, resumed after

    consumer.during_fetch = rebalance
    delivered = await drain(consumer, batch_size=8)
    expected = [(0, offset) for offset in range(30)] + [(1, offset) for offset in range(20)]
    assert sorted(set(delivered)) == expected, "records of the dropped fetch were lost"
    assert consumer.seeks >= 1


async def test_a_batch_cut_by_a_rebalance_leaves_its_rest_to_be_read_again() -> None:
    consumer = FakeConsumer({TP(TOPIC, 0): 40})

    def stop_flow_after_the_first_chunk(done: int) -> None:
        if done == 10:
            consumer.flow_active = False

    def resume(fetch: int) -> None:
        consumer.flow_active = True

    consumer.during_fetch = resume
    delivered = await drain(consumer, batch_size=10, on_batch=stop_flow_after_the_first_chunk)
    assert sorted(set(delivered)) == [(0, offset) for offset in range(40)], "rest lost"
    # Each batch tracked its first message before the handler saw it.
    assert [m.offset for m in consumer.tracked][:2] == [0, 10]


async def test_a_partition_paused_while_its_fetch_was_in_flight_is_fetched_again() -> None:
    consumer = FakeConsumer({TP(TOPIC, 0): 12, TP(TOPIC, 1): 9})
    consumer.committed[TP(TOPIC, 1)] = 4  # committed: faust's seek takes it back there
    consumer.positions[TP(TOPIC, 1)] = 4

    def pause_then_resume(fetch: int) -> None:
        consumer.paused = {TP(TOPIC, 1)} if fetch == 1 else set()

    consumer.during_fetch = pause_then_resume
    delivered = await drain(consumer, batch_size=5)
    expected = [(0, offset) for offset in range(12)] + [(1, offset) for offset in range(4, 9)]
    assert sorted(set(delivered)) == expected


async def test_a_written_batch_is_acked_whole_and_a_held_one_not_at_all() -> None:
    tp = TP(TOPIC, 0)
    consumer = FakeConsumer({tp: 7})
    consumer._committed_offset[tp] = 1  # offset 0 committed before: not acked again
    seen: list[Record] = []

    async def handler(records: Sequence[Record]) -> bool:
        seen.extend(records)
        if len(seen) > 4:
            consumer._stopped.set_ = True
            return False  # the second batch failed: held
        return True

    await drain_in_batches(consumer, _Fetcher(), TOPIC, handler, 4)
    assert [r.offset for r in seen] == list(range(7))
    assert seen[0] == Record(TOPIC, 0, 0, 1_750_000_000.0, b"u", b"{}")
    assert sorted(consumer._acked_index[tp]) == [1, 2, 3]  # the first batch, past the commit
    assert consumer._read_offset[tp] == 3  # never past what was acked
    # Each batch's first message was tracked; only the written batch's is acked.
    assert [(m.offset, m.acked) for m in consumer.tracked] == [(0, True), (4, False)]
