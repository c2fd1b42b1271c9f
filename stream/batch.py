"""One batch of Kafka messages -> profile and counter updates in Redis, bad input -> dead letters.

:class:`Plan` is the pure part: it validates and groups the messages per user, applies each
user's events behind the profile's offset fence and says what to write (profiles, and the
per-partition counter updates). :func:`process_batch` drives it through the stores with one
retry helper for both fenced writes (:func:`retry_fenced`); it is plain async code over
:class:`~stream.records.Record` tuples, tested with a real Redis and no broker.

Delivery is at least once and counted once: faust acks (and later commits) a batch only after
its profiles are written and its dead letters are delivered; a redelivered message is skipped by
the per-profile offset fence (:meth:`~recommender.core.profile.Profile.has_applied`). If a
batch cannot be written after bounded retries, its messages stay unacked and the worker stops,
so they are read again by the next worker instead of being dropped. Carrying on past such a
batch would be wrong: a later event of the same user would move the fence past the lost one.

Within a batch the order is: profiles, then the dead letters (acknowledged by the broker), then
each partition's counters with their fence ``_off``, the partition's applied offset. So
``_off`` covers everything before it, a restarted worker can start from it
(:mod:`stream.offsets`), and a redelivered bad message at or below it is not dead-lettered
again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from redis.exceptions import RedisError

from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.metrics import WorkerMetrics
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import FenceUpdate, ProfileStore
from recommender.core.attribution import attribution_increments
from recommender.core.errors import InvalidEventError, ZmotError
from recommender.core.events import MAX_TS, MIN_TS, Event, parse_event
from recommender.core.feedback import CounterKey, PartitionUpdate, partition_update
from recommender.core.privacy import NO_STATE, PrivacyState
from recommender.core.profile import Position, Profile
from recommender.core.replay import Profiler
from stream.dead_letters import DeadLetter, DeadLetterSink, deliver
from stream.offsets import AppliedOffsets
from stream.records import Record

log = logging.getLogger(__name__)

_A = TypeVar("_A")
_B = TypeVar("_B")
_K = TypeVar("_K")

MAX_ATTEMPTS = 6
"""Read-apply-write attempts per batch (fence conflicts and Redis errors) before giving up."""

RETRY_DELAY_S = 0.1
"""First back-off after a Redis error; doubles per attempt (0.1 + 0.2 + ... ~ 3 s in all)."""


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
    withheld: int = 0
    """Events dropped because the person was erased after them or refused profiling."""
    duplicates: int = 0

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


@dataclass
class Plan:
    """A batch split up: each user's events in message order, the dead letters, the outcomes.

    Pure apart from logging: the stores' reads come in, what to write goes out.
    """

    records: Sequence[Record]
    by_user: dict[str, list[tuple[Record, Event]]]
    letters: dict[Position, DeadLetter]
    outcomes: dict[str, list[tuple[Event, bool]]] = field(default_factory=dict)
    """Per user, each event of the last attempt with whether it was applied (not a replay)."""
    withheld: dict[str, list[str]] = field(default_factory=dict)
    """Per user, the reason of each event of the last attempt that privacy kept out."""
    duplicates: set[Position] = field(default_factory=set)
    """Messages whose event_id an earlier message applied (a retried send): they count in
    nothing, not even the partition counters."""

    @classmethod
    def of(cls, records: Sequence[Record]) -> Plan:
        """Validate every message; group the valid ones per user, the rest as dead letters."""
        letters: dict[Position, DeadLetter] = {}
        by_user: dict[str, list[tuple[Record, Event]]] = {}
        for record in records:
            outcome = validate(record)
            if isinstance(outcome, DeadLetter):
                letters[(record.partition, record.offset)] = outcome
            else:
                by_user.setdefault(outcome.user_id, []).append((record, outcome))
        return cls(records, by_user, letters)

    def apply(
        self,
        profiler: Profiler,
        users: Sequence[str],
        stored: Sequence[Profile | None],
        states: Sequence[PrivacyState] | None = None,
        default_consent: bool = True,
    ) -> list[FenceUpdate]:
        """Apply each user's events to the profile read for them; the profiles to write.

        A profile is written behind the fence it was read with, and only if an event was new.
        Events the person's privacy state withholds (erased after them, no consent) are left
        out and counted, never applied.
        """
        updates: list[FenceUpdate] = []
        for i, (user_id, read) in enumerate(zip(users, stored, strict=True)):
            state = states[i] if states is not None else NO_STATE
            events = self._allowed(user_id, state, default_consent)
            profile = read if read is not None else Profile()
            fence = profile.position
            outcomes: list[tuple[Event, bool]] = []
            self.outcomes[user_id] = outcomes
            self._apply_user(profiler, profile, events, outcomes)
            if any(done for _, done in outcomes):
                updates.append((user_id, fence, profile))
        return updates

    def _allowed(
        self, user_id: str, state: PrivacyState, default_consent: bool
    ) -> list[tuple[Record, Event]]:
        """The user's events the privacy state lets through; the others' reasons recorded."""
        events = self.by_user[user_id]
        if state == NO_STATE and default_consent:
            self.withheld.pop(user_id, None)
            return events
        allowed: list[tuple[Record, Event]] = []
        reasons: list[str] = []
        for record, event in events:
            why = state.withholds(event.ts if event.ts is not None else 0.0, default_consent)
            if why is None:
                allowed.append((record, event))
            else:
                reasons.append(why)
        if reasons:
            self.withheld[user_id] = reasons
        else:
            self.withheld.pop(user_id, None)
        return allowed

    def _apply_user(
        self,
        profiler: Profiler,
        profile: Profile,
        events: list[tuple[Record, Event]],
        outcomes: list[tuple[Event, bool]],
    ) -> None:
        """Apply one user's events in order, each with its (partition, offset) as the fence.

        An event the profiler fails on becomes a dead letter: a bug on one event must not stop
        the stream.
        """
        if self.duplicates:  # only after a retry of the batch
            self.duplicates.difference_update((r.partition, r.offset) for r, _ in events)
        for record, event in events:
            position = (record.partition, record.offset)
            if position in self.letters:
                continue
            if event.event_id is not None and profile.is_duplicate(event.event_id, record.offset):
                self.duplicates.add(position)
            try:
                done = profiler.apply(profile, event, position=position)
            except Exception as exc:  # noqa: BLE001 - a bug on one event must not stop the stream
                log.exception("cannot apply %s", record.source, extra=record.log_fields)
                reason = f"cannot apply: {type(exc).__name__}: {exc}"
                self.letters[position] = DeadLetter(record, reason)
                continue
            outcomes.append((event, done))

    def events(self) -> list[Event]:
        """Every valid event of the batch."""
        return [e for pairs in self.by_user.values() for _, e in pairs]

    def counter_updates(
        self,
        counted: dict[int, int | None],
        extra: Callable[[list[Event]], Mapping[CounterKey, int]] | None = None,
    ) -> list[PartitionUpdate]:
        """Counter updates of the partitions in ``counted``: messages after each one's fence
        (``extra``: more counters from those messages' events, e.g. per-arm attribution).

        A dead letter counts nothing but still moves the fence.
        """
        events = {(r.partition, r.offset): e for pairs in self.by_user.values() for r, e in pairs}
        for position in [*self.letters, *self.duplicates]:
            events.pop(position, None)
        by_partition: dict[int, list[tuple[int, Event | None]]] = {p: [] for p in counted}
        get = events.get
        for r in self.records:  # one pass, not one per partition
            messages = by_partition.get(r.partition)
            if messages is not None:
                messages.append((r.offset, get((r.partition, r.offset))))
        updates = []
        for partition, last_counted in counted.items():
            update = partition_update(partition, last_counted, by_partition[partition], extra)
            if update is not None:
                updates.append(update)
        return updates

    def dead_letters(self, counted: Mapping[int, int | None] | None = None) -> list[DeadLetter]:
        """The dead letters in (partition, offset) order; with ``counted`` (each partition's
        counter fence as read) only those after it: the others were delivered before their
        fence moved past them."""
        return [
            self.letters[(partition, offset)]
            for partition, offset in sorted(self.letters)
            if counted is None or _after(offset, counted.get(partition))
        ]

    def stats(self, conflicts: int) -> BatchStats:
        """The batch's counts once written."""
        results = [done for pairs in self.outcomes.values() for _, done in pairs]
        applied = sum(results)
        return BatchStats(
            consumed=len(self.records),
            applied=applied,
            replayed=len(results) - applied - len(self.duplicates),
            dead_lettered=len(self.letters),
            conflicts=conflicts,
            batches=1,
            withheld=sum(len(reasons) for reasons in self.withheld.values()),
            duplicates=len(self.duplicates),
        )

    def observe(self, metrics: WorkerMetrics, started: float, written_at: float) -> None:
        """Record a finished batch; a message that never parsed counts as type ``invalid``."""
        types = {
            (r.partition, r.offset): e.type for pairs in self.by_user.values() for r, e in pairs
        }
        results = [pair for pairs in self.outcomes.values() for pair in pairs]
        # Each outcome's Event is the object of its (record, event) pair: map back to records.
        record_of = {id(e): r for pairs in self.by_user.values() for r, e in pairs}
        metrics.observe_batch(
            consumed=[types.get((r.partition, r.offset), "invalid") for r in self.records],
            applied=[(e.type, e.ts) for e, done in results if done and e.ts is not None],
            replayed=[e.type for e, done in results if not done],
            dead_lettered=[types.get(position, "invalid") for position in self.letters],
            withheld=[why for reasons in self.withheld.values() for why in reasons],
            seconds=time.perf_counter() - started,
            written_at=written_at,
            size=len(self.records),
            record_times=[
                ts for e, done in results if done and (ts := record_of[id(e)].timestamp) is not None
            ],
        )


@dataclass
class Fenced(Generic[_K]):
    """The keys of one fenced write still to be written: users' profiles or partitions' counters.

    ``on_conflict``, when given, is told how many keys found their fence moved (a metric).
    """

    name: str
    unit: str
    pending: list[_K]
    on_conflict: Callable[[int], None] | None = None
    deferred: bool = False
    """Set by an attempt that did not try this write (it waits for another one): its pending
    keys are then no conflict."""


async def retry_fenced(
    attempt: Callable[[], Awaitable[None]],
    writes: Sequence[Fenced[Any]],
    *,
    max_attempts: int,
    retry_delay_s: float,
    metrics: WorkerMetrics | None = None,
) -> int:
    """Run ``attempt`` until every write's ``pending`` is empty; the fence conflicts met.

    ``attempt`` reads, applies and writes all pending keys and leaves in each ``pending`` the
    keys whose fence moved in between (another worker during a rebalance): they are re-read
    at once. A Redis error retries the attempt after a back-off doubling from
    ``retry_delay_s``. Either, at ``max_attempts``, raises :class:`BatchError`.
    """
    conflicts = 0
    for number in itertools.count(1):
        if not any(write.pending for write in writes):
            break
        try:
            await attempt()
        except (RedisError, OSError) as exc:
            if metrics is not None:
                metrics.redis_errors.inc()
            if number >= max_attempts:
                raise BatchError(f"Redis failed {number} times, last: {_describe(exc)}") from exc
            delay = retry_delay_s * 2 ** (number - 1)
            log.warning("redis error (%s); retrying the batch in %.2f s", _describe(exc), delay)
            await asyncio.sleep(delay)
            continue
        for write in writes:
            moved = write.pending
            if not moved or write.deferred:
                continue
            conflicts += len(moved)
            if write.on_conflict is not None:
                write.on_conflict(len(moved))
            if number >= max_attempts:
                raise BatchError(
                    f"{write.name} fences of {len(moved)} {write.unit} kept moving after "
                    f"{number} attempts (another worker writing the same {write.unit}?), "
                    f"e.g. {moved[:3]}"
                )
            log.info(
                "%s fence moved for %d %s; re-reading them", write.name, len(moved), write.unit
            )
    return conflicts


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
    privacy: PrivacyStore | None = None,
    default_consent: bool = True,
    applied: AppliedOffsets | None = None,
    decisions: DecisionStore | None = None,
) -> BatchStats:
    """Apply a batch of messages to the profiles in Redis; dead-letter what cannot be applied.

    Reads every user of the batch in one round trip, applies each user's events in message
    order with their (partition, offset) as the fence, and writes in one round trip per
    :attr:`~recommender.adapters.redis_store.ProfileStore.write_chunk` profiles (each
    profile behind its own fence: a failure between round trips leaves whole profiles
    written or not, and the retry, or the redelivery after a crash, applies only the rest).
    Users whose fence moved in between (another worker during a rebalance) are re-read and
    re-applied.
    Returns when everything is written and delivered; raises :class:`BatchError` otherwise.
    ``metrics``, when given, records the batch (outcomes per type, freshness, timing).

    ``feedback``, when given, also adds the batch to the per-partition offer and rating
    counters, behind each partition's own offset fence (read and written alongside the
    profiles); a partition whose fence moved is re-read and recounted. The counters' fence
    (``_off``) is written after the profiles: it is the partition's applied offset.

    ``applied``, when given, checks each read of those fences against what this worker last
    wrote, and raises :class:`~stream.offsets.RedisLostWritesError` when Redis went back.

    ``privacy``, when given, is read with the profiles: events of a person erased after them,
    or without consent to profiling (``default_consent`` when the person never chose), are
    dropped and counted as withheld. Feedback counters (anonymous per-partition totals) still
    count them.

    ``decisions``, with ``feedback``, attributes offer events, carts and purchases to the
    experiment arms of the decisions they follow (:mod:`recommender.core.attribution`), in
    the same fenced counter updates.
    """
    started = time.perf_counter()
    plan = Plan.of(records)
    on_conflict = metrics.conflicts.inc if metrics is not None else None
    profiles = Fenced[str]("profile", "users", list(plan.by_user), on_conflict)
    partitions = sorted({r.partition for r in records}) if feedback is not None else []
    counters = Fenced[int]("feedback counter", "partitions", partitions)

    handled: set[Position] = set()
    """Dead letters delivered by this call, or found below their partition's fence."""

    async def attempt() -> None:
        (stored, states), counted = await _together(
            _read_profiles(store, privacy, profiles.pending),
            _read_counted(feedback, counters.pending),
        )
        if applied is not None:
            applied.check(counted)
        updates = plan.apply(profiler, profiles.pending, stored, states, default_consent)
        written: list[str] = []
        try:
            profiles.pending = await store.put_many(updates, written)
        except BaseException:
            # Written in several round trips, the first ones may be in Redis: only the rest
            # is read and applied again (the fence would skip those events anyway, counted
            # as replays).
            if written:
                done = set(written)
                profiles.pending = [user for user in profiles.pending if user not in done]
            raise
        # The counters' _off is the partition's applied offset, where a restarted worker starts
        # (stream.offsets): it moves only once every profile of the batch is written, and in a
        # later command, so a Redis that loses the tail of its writes never keeps an _off
        # whose profiles it lost.
        counters.deferred = bool(profiles.pending)
        if counters.deferred:
            return
        letters = [
            letter
            for letter in plan.dead_letters(counted if feedback is not None else None)
            if (letter.record.partition, letter.record.offset) not in handled
        ]
        if letters:
            # Before the fence moves past them: a worker that dies in between sends them again
            # (at least once), one that does not never resends a letter below the fence.
            try:
                await deliver(letters, dead_letter)
            except Exception as exc:
                raise _SinkFailed(exc) from exc
        handled.update(plan.letters)
        extra = None
        if decisions is not None and counters.pending:
            by_id, by_user = await decisions.for_events(plan.events())

            def extra(fresh: list[Event]) -> Mapping[CounterKey, int]:
                return attribution_increments(fresh, by_id, by_user, decisions.window_s)

        counts = plan.counter_updates(counted, extra)
        counters.pending = await _write_counts(feedback, counts)
        if applied is not None:
            applied.wrote(counts)

    try:
        conflicts = await retry_fenced(
            attempt,
            (profiles, counters),
            max_attempts=max_attempts,
            retry_delay_s=retry_delay_s,
            metrics=metrics,
        )
    except _SinkFailed as failed:
        raise failed.error from failed.error.__cause__
    # Letters of a batch that had nothing to write (no valid event, no counters)
    unsent = [
        letter
        for letter in plan.dead_letters()
        if (letter.record.partition, letter.record.offset) not in handled
    ]
    if unsent:
        await deliver(unsent, dead_letter)
    written_at = time.time()
    if metrics is not None:
        plan.observe(metrics, started, written_at)
    return plan.stats(conflicts)


async def _together(first: Awaitable[_A], second: Awaitable[_B]) -> tuple[_A, _B]:
    """Await both concurrently; when one fails, raise only after the other has finished.

    Never leaves a write running behind the next attempt (the fences would still catch it).
    """
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    for result in (a, b):
        if isinstance(result, BaseException):
            raise result
    return a, b  # type: ignore[return-value]  # exceptions were raised above


async def _read_profiles(
    store: ProfileStore, privacy: PrivacyStore | None, users: list[str]
) -> tuple[list[Profile | None], list[PrivacyState] | None]:
    """The users' profiles and, with a privacy store, their privacy states (concurrently)."""
    if privacy is None:
        return await store.get_many(users), None
    return await _together(store.get_many(users), privacy.states(users))


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


class _SinkFailed(Exception):
    """The dead-letter sink's error, carried past :func:`retry_fenced` (it is not Redis's)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _after(offset: int, fence: int | None) -> bool:
    return fence is None or offset > fence


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
