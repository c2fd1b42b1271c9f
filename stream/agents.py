"""The stream agent: Kafka batches of events -> profile updates in Redis, bad input -> DLQ.

The work is in :func:`process_batch`, plain async code over :class:`Record` tuples, so it is
tested with a real Redis and no broker. :func:`register_agent` is the thin faust glue around it.

Delivery is at least once and counted once: faust acks (and later commits) a batch only after
its profiles are written and its dead letters are delivered; a redelivered message is skipped by
the per-profile offset fence (:meth:`~recommender.core.profile.Profile.has_applied`). If a
batch cannot be written after bounded retries, its messages stay unacked and the worker stops,
so they are read again by the next worker instead of being dropped. Carrying on past such a
batch would be wrong: a later event of the same user would move the fence past the lost one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple, TypeVar

from aiokafka.errors import MessageSizeTooLargeError
from redis.exceptions import RedisError

from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.logs import message_fields
from recommender.adapters.metrics import WorkerMetrics
from recommender.adapters.redis_store import ProfileStore
from recommender.core.errors import InvalidEventError, ZmotError
from recommender.core.events import MAX_TS, MIN_TS, Event, parse_event
from recommender.core.feedback import PartitionUpdate, partition_update
from recommender.core.profile import Profile, position_token
from recommender.core.replay import Profiler
from recommender.core.settings import Settings

log = logging.getLogger(__name__)

_A = TypeVar("_A")
_B = TypeVar("_B")

REASON_HEADER = "zmot-reason"
FIELD_HEADER = "zmot-field"
SOURCE_HEADER = "zmot-source"
TRUNCATED_HEADER = "zmot-truncated"

MAX_ATTEMPTS = 6
"""Read-apply-write attempts per batch (fence conflicts and Redis errors) before giving up."""

RETRY_DELAY_S = 0.1
"""First back-off after a Redis error; doubles per attempt (0.1 + 0.2 + ... ~ 3 s in all)."""

DLQ_TRUNCATE_BYTES = 64 * 1024
"""A dead letter too large for the broker is resent with its value cut to this size."""


class Record(NamedTuple):
    """One Kafka message as the batch logic needs it (timestamp in epoch seconds)."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> str:
        """``topic/partition/offset``, the message's address in logs and DLQ headers."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def log_fields(self) -> dict[str, Any]:
        """``extra=`` of a log line about this message (JSON logs show them as fields)."""
        return message_fields(self.topic, self.partition, self.offset)


class DeadLetter(NamedTuple):
    """A message the worker cannot apply, with the reason and the offending field."""

    record: Record
    reason: str
    field: str | None = None

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the dead letter: reason (with field), field, source."""
        reason = f"{self.field}: {self.reason}" if self.field else self.reason
        out = [(REASON_HEADER, reason.encode()), (SOURCE_HEADER, self.record.source.encode())]
        if self.field:
            out.append((FIELD_HEADER, self.field.encode()))
        return out


DeadLetterSink = Callable[[Sequence[DeadLetter]], Awaitable[None]]
"""Delivers dead letters and returns only once the broker has acknowledged all of them."""


class BatchError(ZmotError):
    """A batch that could not be written; its messages must be read again."""


@dataclass
class BatchStats:
    """What happened to the messages of one batch (or, summed, of a worker's life)."""

    consumed: int = 0
    applied: int = 0
    replayed: int = 0
    dead_lettered: int = 0
    conflicts: int = 0
    batches: int = 0

    def add(self, other: BatchStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def validate(record: Record) -> Event | DeadLetter:
    """The event in ``record`` with its ``ts`` set, or the reason it cannot be applied.

    Beyond the event contract the key must be the user id: the offset fence of a profile is
    only sound when all of a user's events are in one partition, which the key ensures.
    """
    if record.value is None:
        return DeadLetter(record, "empty (null) message", "value")
    try:
        event = parse_event(record.value)
    except InvalidEventError as exc:
        return DeadLetter(record, exc.reason, exc.field)
    except Exception as exc:  # noqa: BLE001 - nothing a producer sends may stop the worker
        return DeadLetter(record, f"cannot parse: {type(exc).__name__}: {exc}")
    if record.key is None:
        return DeadLetter(record, "missing; events must be keyed by user_id", "key")
    if record.key != event.user_id.encode():
        return DeadLetter(record, "must equal user_id (UTF-8)", "key")
    if event.ts is None:
        ts = record.timestamp
        if ts is None or not MIN_TS <= ts < MAX_TS:
            return DeadLetter(record, "missing, and the record has no usable timestamp", "ts")
        event = event.with_ts(ts)
    return event


async def process_batch(
    records: Sequence[Record],
    *,
    profiler: Profiler,
    store: ProfileStore,
    dead_letter: DeadLetterSink,
    max_attempts: int = MAX_ATTEMPTS,
    retry_delay_s: float = RETRY_DELAY_S,
    metrics: WorkerMetrics | None = None,
    feedback: FeedbackStore | None = None,
) -> BatchStats:
    """Apply a batch of messages to the profiles in Redis; dead-letter what cannot be applied.

    Reads every user of the batch in one round trip, applies each user's events in message
    order with their (partition, offset) as the fence, and writes in one round trip. Users whose
    fence moved in between (another worker during a rebalance) are re-read and re-applied.
    Returns when everything is written and delivered; raises :class:`BatchError` otherwise.
    ``metrics``, when given, records the batch (outcomes per type, freshness, timing).

    ``feedback``, when given, also adds the batch to the per-partition offer and rating
    counters, behind each partition's own offset fence (read and written alongside the
    profiles, concurrently); a partition whose fence moved is re-read and recounted.
    """
    started = time.perf_counter()
    stats = BatchStats(consumed=len(records), batches=1)
    letters: dict[tuple[int, int], DeadLetter] = {}
    by_user: dict[str, list[tuple[Record, Event]]] = {}
    for record in records:
        outcome = validate(record)
        if isinstance(outcome, DeadLetter):
            letters[(record.partition, record.offset)] = outcome
        else:
            by_user.setdefault(outcome.user_id, []).append((record, outcome))

    applied: dict[str, int] = {}
    replayed: dict[str, int] = {}
    outcomes: dict[str, list[tuple[Event, bool]]] = {}  # per user: (event, applied?)
    pending = list(by_user)
    counting = sorted({r.partition for r in records}) if feedback is not None else []
    attempt = 0
    while pending or counting:
        attempt += 1
        try:
            profiles, counted = await _together(
                store.get_many(pending), _read_counted(feedback, counting)
            )
            updates: list[tuple[str, str, Profile]] = []
            for user_id, profile in zip(pending, profiles, strict=True):
                fence = position_token(profile)
                outcomes[user_id] = []
                n_applied, n_replayed = _apply_user(
                    profiler, profile, by_user[user_id], letters, outcomes[user_id]
                )
                applied[user_id], replayed[user_id] = n_applied, n_replayed
                if n_applied:
                    updates.append((user_id, fence, profile))
            counts = _count_updates(records, by_user, letters, counted)
            conflicts, moved = await _together(
                store.put_many(updates), _write_counts(feedback, counts)
            )
        except (RedisError, OSError) as exc:
            if metrics is not None:
                metrics.redis_errors.inc()
            if attempt >= max_attempts:
                raise BatchError(f"Redis failed {attempt} times, last: {_describe(exc)}") from exc
            delay = retry_delay_s * 2 ** (attempt - 1)
            log.warning("redis error (%s); retrying the batch in %.2f s", _describe(exc), delay)
            await asyncio.sleep(delay)
            continue
        if conflicts:
            stats.conflicts += len(conflicts)
            if metrics is not None:
                metrics.conflicts.inc(len(conflicts))
            if attempt >= max_attempts:
                raise BatchError(
                    f"profile fences of {len(conflicts)} users kept moving after {attempt} "
                    f"attempts (another worker writing the same users?), e.g. {conflicts[:3]}"
                )
            log.info("fence moved for %d users; re-reading them", len(conflicts))
        if moved:
            stats.conflicts += len(moved)
            if attempt >= max_attempts:
                raise BatchError(
                    f"feedback counter fences of partitions {moved} kept moving after {attempt} "
                    "attempts (another worker counting the same partitions?)"
                )
            log.info("counter fence moved for partitions %s; re-reading them", moved)
        pending = conflicts
        counting = moved
    written_at = time.time()

    if letters:
        ordered = [letters[position] for position in sorted(letters)]
        for letter in ordered:
            log.warning(
                "dead letter %s: %s",
                letter.record.source,
                _reason_text(letter),
                extra=letter.record.log_fields,
            )
        await dead_letter(ordered)
    stats.applied = sum(applied.values())
    stats.replayed = sum(replayed.values())
    stats.dead_lettered = len(letters)
    if metrics is not None:
        _observe(metrics, records, by_user, outcomes, letters, started, written_at)
    return stats


async def _together(first: Awaitable[_A], second: Awaitable[_B]) -> tuple[_A, _B]:
    """Await both concurrently; when one fails, raise only after the other has finished.

    Never leaves a write running behind the next attempt (the fences would still catch it).
    """
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    for result in (a, b):
        if isinstance(result, BaseException):
            raise result
    return a, b  # type: ignore[return-value]  # exceptions were raised above


async def _read_counted(
    feedback: FeedbackStore | None, partitions: list[int]
) -> dict[int, int | None]:
    """The last counted offset of each partition (nothing to read without a feedback store)."""
    if feedback is None or not partitions:
        return {}
    return await feedback.offsets(partitions)


async def _write_counts(feedback: FeedbackStore | None, counts: list[PartitionUpdate]) -> list[int]:
    """Write the counter updates; the partitions whose fence had moved."""
    if feedback is None or not counts:
        return []
    return await feedback.apply(counts)


def _count_updates(
    records: Sequence[Record],
    by_user: dict[str, list[tuple[Record, Event]]],
    letters: dict[tuple[int, int], DeadLetter],
    counted: dict[int, int | None],
) -> list[PartitionUpdate]:
    """Counter updates of the partitions in ``counted``: messages after each one's fence.

    A dead letter counts nothing but still moves the fence.
    """
    events = {(r.partition, r.offset): e for pairs in by_user.values() for r, e in pairs}
    for position in letters:
        events.pop(position, None)
    updates = []
    for partition, last_counted in counted.items():
        messages = [
            (r.offset, events.get((r.partition, r.offset)))
            for r in records
            if r.partition == partition
        ]
        update = partition_update(partition, last_counted, messages)
        if update is not None:
            updates.append(update)
    return updates


def _observe(
    metrics: WorkerMetrics,
    records: Sequence[Record],
    by_user: dict[str, list[tuple[Record, Event]]],
    outcomes: dict[str, list[tuple[Event, bool]]],
    letters: dict[tuple[int, int], DeadLetter],
    started: float,
    written_at: float,
) -> None:
    """Record a finished batch; a message that never parsed counts as type ``invalid``."""
    types = {(r.partition, r.offset): e.type for events in by_user.values() for r, e in events}
    results = [pair for pairs in outcomes.values() for pair in pairs]
    metrics.observe_batch(
        consumed=[types.get((r.partition, r.offset), "invalid") for r in records],
        applied=[(e.type, e.ts) for e, done in results if done and e.ts is not None],
        replayed=[e.type for e, done in results if not done],
        dead_lettered=[types.get(position, "invalid") for position in letters],
        seconds=time.perf_counter() - started,
        written_at=written_at,
        size=len(records),
    )


def _apply_user(
    profiler: Profiler,
    profile: Profile,
    events: list[tuple[Record, Event]],
    letters: dict[tuple[int, int], DeadLetter],
    outcomes: list[tuple[Event, bool]] | None = None,
) -> tuple[int, int]:
    """Apply one user's events in order; returns (applied, skipped as already applied).

    ``outcomes``, when given, receives each event with whether it was applied.
    """
    n_applied = n_replayed = 0
    for record, event in events:
        position = (record.partition, record.offset)
        if position in letters:
            continue
        try:
            done = profiler.apply(profile, event, position=position)
        except Exception as exc:  # noqa: BLE001 - a bug on one event must not stop the stream
            log.exception("cannot apply %s", record.source, extra=record.log_fields)
            letters[position] = DeadLetter(record, f"cannot apply: {type(exc).__name__}: {exc}")
            continue
        if done:
            n_applied += 1
        else:
            n_replayed += 1
        if outcomes is not None:
            outcomes.append((event, done))
    return n_applied, n_replayed


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _reason_text(letter: DeadLetter) -> str:
    return f"{letter.field}: {letter.reason}" if letter.field else letter.reason


# --- faust glue ---------------------------------------------------------------------------


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


def faust_dead_letter_sink(dlq: Any) -> DeadLetterSink:
    """A sink producing to the faust topic ``dlq`` with the original key and value bytes."""

    async def send(letters: Sequence[DeadLetter]) -> None:
        pending = []
        for letter in letters:
            try:
                # force=True: send now rather than attach to the source event (faust would
                # publish attachments at commit time, after our ack).
                fut = await dlq.send(
                    key=letter.record.key,
                    value=letter.record.value,
                    headers=letter.headers,
                    force=True,
                )
            except MessageSizeTooLargeError:  # over the producer's own limit
                await _send_truncated(dlq, letter)
                continue
            pending.append((letter, fut))
        results = await asyncio.gather(*(fut for _, fut in pending), return_exceptions=True)
        for (letter, _), result in zip(pending, results, strict=True):
            if isinstance(result, MessageSizeTooLargeError):  # over the broker's limit
                await _send_truncated(dlq, letter)
            elif isinstance(result, BaseException):
                raise result

    return send


async def _send_truncated(dlq: Any, letter: DeadLetter) -> None:
    """Dead-letter a message whose value plus headers no longer fits the broker's limit."""
    value = letter.record.value or b""
    log.warning(
        "dead letter %s is too large for the DLQ (%d bytes); sending its first %d bytes",
        letter.record.source,
        len(value),
        DLQ_TRUNCATE_BYTES,
        extra=letter.record.log_fields,
    )
    headers = [*letter.headers, (TRUNCATED_HEADER, str(len(value)).encode())]
    fut = await dlq.send(
        key=letter.record.key, value=value[:DLQ_TRUNCATE_BYTES], headers=headers, force=True
    )
    await fut


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
) -> Any:
    """Register the profile agent on ``app``; returns the faust agent.

    ``on_fatal`` is called once when a batch cannot be written; it must stop the worker. The
    agent then holds that batch, and every later one, unacked so the stop cannot commit past it.
    """
    source = app.topic(settings.events_topic, partitions=settings.topic_partitions)
    dlq = app.topic(settings.dlq_topic, partitions=1)
    sink = faust_dead_letter_sink(dlq)

    failed: list[BaseException] = []

    async def profiles(stream: Any) -> None:
        async for events in stream.take_events(
            settings.batch_size, within=settings.batch_timeout_s
        ):
            if failed:
                # Stopping after a failed batch: whatever is still buffered is held, not
                # processed (it would move fences past the failed events).
                _hold(events)
                continue
            records = [record_of(event.message) for event in events]
            try:
                batch = await process_batch(
                    records,
                    profiler=profiler,
                    store=store,
                    dead_letter=sink,
                    metrics=metrics,
                    feedback=feedback,
                )
            except asyncio.CancelledError:
                _hold(events)  # cut off mid-batch: read it again rather than commit it
                raise
            except Exception as exc:
                _hold(events)
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
                continue
            stats.add(batch)
            log.debug(
                "batch: consumed=%d applied=%d replayed=%d dead_lettered=%d",
                batch.consumed,
                batch.applied,
                batch.replayed,
                batch.dead_lettered,
            )

    agent = app.agent(source, name="zmot.profiles")(profiles)

    last_logged: list[int] = [0]

    async def log_stats() -> None:
        if stats.consumed != last_logged[0]:
            last_logged[0] = stats.consumed
            log.info(
                "totals: consumed=%d applied=%d replayed=%d dead_lettered=%d conflicts=%d",
                stats.consumed,
                stats.applied,
                stats.replayed,
                stats.dead_lettered,
                stats.conflicts,
            )

    app.timer(stats_log_interval_s, name="zmot.stats")(log_stats)
    return agent
