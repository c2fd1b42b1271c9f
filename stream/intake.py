"""faust's consumer hands the worker whole fetches of the events topic, not one message at a time.

faust delivers each message through its conductor, a channel queue and the agent's stream
(with a task pair per message in the fetch loop): about 10-14k messages/s per process here,
whatever the agent does (BENCHMARKS.md, "faust agent counting ..."). The worker needs more than
that, and it works on batches anyway. So, by default (``ZMOT_WORKER_INTAKE=fetch``; ``agent``
keeps faust's agent), the consumer's fetch loop (``_drain_messages``, run by faust's
``Fetcher`` service) is replaced, for this app only, by :func:`drain_in_batches`: each
``getmany`` result of the events topic goes to one handler call, in batches of at most
``batch_size`` messages in partition order.

Everything else stays faust's: group membership and rebalancing, the partitions' seeks, flow
control and the commits. The loop keeps faust's bookkeeping: it *tracks* the first message of
each batch before the handler sees it (faust's rebalance and clean stop wait while a tracked
message is unacked, ``stream_wait_empty``: one per batch holds them until the batch is done,
without a weak reference per message), and the handler *acks* every message it finished (faust
commits the highest contiguous acked offset of each partition every
``broker_commit_interval``). A message never acked is never committed: read again by whoever
owns the partition next. Messages of other topics (none today) still take faust's own
per-message path.

Records the loop takes out of the consumer and does not deliver (a fetch that returns while
flow is stopped for a rebalance, the rest of a fetch cut short by one, a partition paused
meanwhile) are sought back (:func:`read_again`): aiokafka has already moved its fetch position
past them, and a fetch that was waiting when a rebalance began can return the newly assigned
partitions' records *after* the rebalance's own seek, just before flow resumes. Dropped
without a seek, those partitions looked drained: the survivor of a two-worker rebalance sat
idle with part of the log never read (RELIABILITY.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from stream.records import Record

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Record]], Awaitable[bool]]
"""Called with a batch of one topic's records in partition order; returns True once they are
written (the loop then acks them all), False to hold them unacked (never committed)."""


def take_batches(consumer: Any, topic: str, handler: BatchHandler, batch_size: int) -> None:
    """Make faust's ``consumer`` deliver ``topic`` to ``handler`` in batches (module docstring).

    Call it on the consumer faust creates (``App._new_consumer``), before it starts.
    """

    async def drain(fetcher: Any) -> None:
        await drain_in_batches(consumer, fetcher, topic, handler, batch_size)

    consumer._drain_messages = drain


def ack_all(consumer: Any, tps: Sequence[Any], batch: Sequence[Record], lo: int, hi: int) -> None:
    """faust's ``Consumer.ack`` for ``batch[lo:hi]`` (partition keys in ``tps``), in one pass.

    The same bookkeeping as acking each message (an offset below the committed one, or acked
    before, is skipped; faust commits the highest contiguous run of acked offsets), under
    faust's ack lock once, without a message object per record.
    """
    if lo >= hi:
        return
    committed_offset = consumer._committed_offset
    acked_index = consumer._acked_index
    acked = consumer._acked
    n = 0
    with ack_lock:
        for i in range(lo, hi):
            tp = tps[i]
            offset = batch[i].offset
            committed = committed_offset[tp]
            if committed is None or offset >= committed:
                index = acked_index[tp]
                if offset not in index:
                    index.add(offset)
                    acked[tp].append(offset)
                    n += 1
        consumer._n_acked += n
    notify(consumer._waiting_for_ack)


async def read_again(consumer: Any, undelivered: Mapping[Any, Any]) -> None:
    """Seek back so that records taken out of the consumer but not delivered are fetched again.

    ``undelivered`` maps each partition to its first record (or message) not delivered.
    aiokafka moves a partition's fetch position past every record ``getmany`` hands out, so a
    dropped record is never fetched again unless someone seeks back. A rebalance's own seek
    (to the committed offsets, then to Redis's applied ones, :mod:`stream.offsets`) covers a
    fetch dropped before it, not one that comes back after it while flow is still stopped
    (a fetch already waiting when the rebalance began does, with the newly assigned
    partitions' records): so seek again, as faust's ``getmany`` does when it drops a fetch.
    Committed offsets never pass an unacked message, and a partition is moved to its first
    undelivered record only when its position is past it: this only ever goes back.
    (``seek_to_committed`` leaves a partition with nothing committed where it is.)
    """
    if consumer.should_stop:
        return  # stopping: the next owner starts from the committed offsets
    try:
        await consumer.perform_seek()
    except Exception as exc:  # the assignment changing under us: that rebalance seeks after
        log.warning("seek to the committed offsets after a dropped fetch failed: %r", exc)
    for tp, first in undelivered.items():
        try:
            if tp in consumer.assignment() and await consumer.position(tp) > first.offset:
                await consumer.seek(tp, first.offset)
        except Exception as exc:  # revoked meanwhile: its next owner reads from the commit
            log.warning("seek back of %s to %d failed: %r", tp, first.offset, exc)


async def drain_in_batches(
    consumer: Any, fetcher: Any, topic: str, handler: BatchHandler, batch_size: int
) -> None:
    """faust's ``Consumer._drain_messages`` with ``topic``'s messages taken a fetch at a time.

    Same order of duties per fetch as faust's loop: skip what was already read, record gaps
    (compacted or transactional offsets) so commits can pass them, track, deliver, move the
    read offset over what was delivered (never further), commit when ``broker_commit_every``
    acks piled up.
    """
    app = consumer.app
    callback = consumer.callback
    read_offset = consumer._read_offset
    consumer_stopped = consumer._stopped.is_set
    fetcher_stopped = fetcher._stopped.is_set
    set_flag, unset_flag = consumer.diag.set_flag, consumer.diag.unset_flag
    acks_enabled_for = app.topics.acks_enabled_for
    to_message = consumer._to_message
    track = consumer.track_message
    acks_enabled = acks_enabled_for(topic)
    try:
        while not (consumer_stopped() or fetcher_stopped()):
            set_flag(CONSUMER_FETCHING)
            await consumer.sleep(0)
            if consumer.should_stop:
                continue
            records, active = await consumer._wait_next_records(1.0)
            generation = app.consumer_generation_id
            if not records:
                unset_flag(CONSUMER_FETCHING)
                continue
            if consumer.should_stop or not consumer.flow_active:
                # Flow stopped for a rebalance: drop the fetch, as faust does, and seek back.
                await read_again(consumer, {tp: rs[0] for tp, rs in records.items()})
                unset_flag(CONSUMER_FETCHING)
                continue
            # The topic's records as plain tuples (faust's ConsumerMessage costs ~10 us each),
            # with the partition key and the raw record of each kept beside them.
            batch: list[Record] = []
            tps: list[Any] = []
            raw: list[Any] = []
            undelivered: dict[Any, Any] = {}
            buffered = consumer._buffered_partitions
            for tp in sorted(records, key=lambda tp: (tp.topic, tp.partition)):
                if not (active is None or tp in active or tp in buffered):
                    undelivered[tp] = records[tp][0]  # paused meanwhile: fetch it again later
                    continue
                app.monitor.track_tp_end_offset(tp, consumer.highwater(tp))
                last = read_offset[tp]
                ours = tp.topic == topic
                for record in records[tp]:
                    offset = record.offset
                    if last is not None and offset < last:
                        continue  # read before (faust drops these too)
                    if last and offset - last > 1 and acks_enabled_for(tp.topic):
                        await consumer._add_gap(tp, last + 1, offset)
                    if ours:
                        ts = record.timestamp
                        batch.append(
                            Record(
                                tp.topic,
                                tp.partition,
                                offset,
                                None if ts is None else ts / 1000.0,
                                record.key,
                                record.value,
                            )
                        )
                        tps.append(tp)
                        raw.append(record)
                    else:
                        await callback(to_message(tp, record))
                        read_offset[tp] = offset
                    last = offset
            for start in range(0, len(batch), batch_size):
                if app.consumer_generation_id != generation or not consumer.flow_active:
                    # A rebalance began: leave the rest unacked, to be read again.
                    for i in range(len(batch) - 1, start - 1, -1):
                        undelivered[tps[i]] = batch[i]
                    break
                end = start + batch_size
                # Tracked: a rebalance or a clean stop waits until it is acked.
                first = to_message(tps[start], raw[start])
                track(first)
                if not await handler(batch[start:end]):
                    continue  # held: never acked, never committed
                consumer.ack(first)
                if acks_enabled:
                    ack_all(consumer, tps, batch, start + 1, min(end, len(batch)))
                # Only now past what was acked: a read offset ahead of what was handled
                # would make faust drop those messages when they are fetched again after a
                # rebalance, and commit past them (with nothing committed yet it takes the
                # first run of acked offsets, wherever it starts).
                for i in range(start, min(end, len(batch))):
                    read_offset[tps[i]] = batch[i].offset
            if undelivered:
                await read_again(consumer, undelivered)
            commit_every = consumer._commit_every
            if commit_every is not None and consumer._n_acked >= commit_every:
                consumer._n_acked = 0
                await consumer.commit()
            unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if app.should_stop:
            log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if app.should_stop:
            log.info("Consumer shutting down for user cancel.")
            return
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)
