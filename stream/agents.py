"""The faust glue of the stream worker: the handler that processes batches and acks them.

The work is in :func:`stream.batch.process_batch` and the DLQ in :mod:`stream.dead_letters`;
here only what needs faust: turning its messages into :class:`~stream.records.Record` tuples,
taking batches straight from faust's consumer (:mod:`stream.intake`: a fetch at a time, not an
agent's per-message stream), acking what was written, holding a failed batch unacked, and
logging the worker's totals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.metrics import WorkerMetrics
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import ProfileStore
from recommender.core.replay import Profiler
from recommender.core.settings import Settings
from stream.batch import BatchStats, process_batch
from stream.dead_letters import faust_dead_letter_sink
from stream.offsets import WATCH_INTERVAL_S, AppliedOffsets
from stream.records import Record

log = logging.getLogger(__name__)


def record_of(message: Any) -> Record:
    """A :class:`Record` from a faust ``Message`` (its timestamp is already in seconds)."""
    return Record(
        message.topic,
        message.partition,
        message.offset,
        message.timestamp,
        message.key,
        message.value,
    )


def _hold(events: Sequence[Any]) -> None:
    """Keep take_events' acks of ``events`` from reaching the consumer, so they stay uncommitted.

    take_events acks a batch when the loop body returns; one extra reference per message makes
    that ack not the final one.
    """
    for event in events:
        event.message.incref()


def register_agent(
    app: Any,
    settings: Settings,
    *,
    profiler: Profiler,
    store: ProfileStore,
    stats: BatchStats,
    on_fatal: Callable[[BaseException], None],
    stats_log_interval_s: float = 30.0,
    metrics: WorkerMetrics | None = None,
    feedback: FeedbackStore | None = None,
    privacy: PrivacyStore | None = None,
    applied: AppliedOffsets | None = None,
    decisions: DecisionStore | None = None,
) -> Any:
    """Register the profile handler on ``app``; returns the faust agent (or the fetch handler).

    ``settings.worker_intake`` says how batches arrive: ``fetch`` (the default), each fetch
    of faust's consumer (:mod:`stream.intake`, ``app`` must be a
    :class:`~stream.app.WorkerApp`); ``agent``, an agent's ``take_events`` batches through
    faust's per-message stream (its ceiling is ~10-17k events/s per process here). Either way
    a batch is acked once its profiles, dead letters and counters are written.

    ``on_fatal`` is called once when a batch cannot be written; it must stop the worker. The
    handler then holds that batch, and every later one, unacked so the stop cannot commit past
    it.

    ``applied`` (with ``feedback``) makes each assigned partition start from Redis's applied
    offset and stops the worker when Redis went back under it (:mod:`stream.offsets`).
    """
    if applied is not None:
        app.applied_offsets = applied
    source = app.topic(settings.events_topic, partitions=settings.topic_partitions)
    # Retention applies when faust creates the topic (dead letters keep personal data).
    dlq = app.topic(
        settings.dlq_topic, partitions=1, retention=settings.dlq_retention_days * 86400.0
    )
    sink = faust_dead_letter_sink(dlq)

    failed: list[BaseException] = []

    async def run_batch(records: Sequence[Record]) -> bool:
        """Process one batch; False when it failed (held unacked, the worker stopping)."""
        try:
            batch = await process_batch(
                records,
                profiler=profiler,
                store=store,
                dead_letter=sink,
                metrics=metrics,
                feedback=feedback,
                privacy=privacy,
                default_consent=settings.default_consent == "granted",
                applied=applied,
                decisions=decisions,
            )
        except asyncio.CancelledError:
            raise  # cut off mid-batch: unacked, read again rather than committed
        except Exception as exc:
            failed.append(exc)
            # A clean stop would wait for the held messages to be acked: they never will.
            app.conf.stream_wait_empty = False
            first, last = records[0], records[-1]
            log.critical(
                "batch %s .. %s (%d messages) failed and stays uncommitted; stopping: %s",
                first.source,
                last.source,
                len(records),
                exc,
                extra=first.log_fields,
            )
            on_fatal(exc)
            return False
        stats.add(batch)
        log.debug(
            "batch: consumed=%d applied=%d replayed=%d dead_lettered=%d",
            batch.consumed,
            batch.applied,
            batch.replayed,
            batch.dead_lettered,
        )
        return True

    async def profiles(stream: Any) -> None:
        async for events in stream.take_events(
            settings.batch_size, within=settings.batch_timeout_s
        ):
            if failed:
                # Stopping after a failed batch: whatever is still buffered is held, not
                # processed (it would move fences past the failed events).
                _hold(events)
                continue
            try:
                done = await run_batch([record_of(event.message) for event in events])
            except asyncio.CancelledError:
                _hold(events)  # cut off mid-batch: read it again rather than commit it
                raise
            if not done:
                _hold(events)

    async def fetched(records: Sequence[Record]) -> bool:
        if failed:
            return False  # held: never acked
        return await run_batch(records)

    if settings.worker_intake == "fetch":
        app.topics.add(source)  # subscribed like an agent's topic; delivered by stream.intake
        app.batch_intake = (settings.events_topic, fetched, settings.batch_size)
        handler: Any = fetched
    else:
        handler = app.agent(source, name="zmot.profiles")(profiles)

    last_logged: list[int] = [0]

    async def log_stats() -> None:
        if stats.consumed != last_logged[0]:
            last_logged[0] = stats.consumed
            log.info(
                "totals: consumed=%d applied=%d replayed=%d dead_lettered=%d withheld=%d "
                "conflicts=%d duplicates=%d",
                stats.consumed,
                stats.applied,
                stats.replayed,
                stats.dead_lettered,
                stats.withheld,
                stats.conflicts,
                stats.duplicates,
            )

    app.timer(stats_log_interval_s, name="zmot.stats")(log_stats)

    if applied is not None:

        async def watch_applied() -> None:
            if failed:
                return
            try:
                await applied.watch()
            except Exception as exc:  # RedisLostWritesError: stop, the restart repairs
                failed.append(exc)
                app.conf.stream_wait_empty = False
                log.critical("%s", exc)
                on_fatal(exc)

        app.timer(WATCH_INTERVAL_S, name="zmot.applied_offsets")(watch_applied)
    return handler
