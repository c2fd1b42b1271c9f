"""The worker's batch logic against a real Redis, with fake Kafka records and no broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.metrics import WorkerMetrics
from recommender.adapters.redis_client import client_for, close
from recommender.adapters.redis_store import ProfileStore
from recommender.core.events import Event
from recommender.core.profile import Profile
from recommender.core.replay import Profiler
from recommender.core.settings import Settings
from stream.batch import BatchError, process_batch, validate
from stream.dead_letters import FIELD_HEADER, REASON_HEADER, SOURCE_HEADER, DeadLetter
from stream.records import Record
from tests.support.profiles import STORED_REL, stored_profiles

pytestmark = pytest.mark.integration  # needs the Redis of the stack

T0 = 1_750_000_000_000  # epoch ms
TOPIC = "zmot.events.unit"


def ev(user: str, kind: str = "page_view", ts_ms: int | None = T0, **fields: Any) -> bytes:
    data: dict[str, Any] = {"user_id": user, "type": kind, **fields}
    if kind in {"page_view", "add_to_cart", "purchase", "review"}:
        data.setdefault("item_id", f"item-{len(fields)}")
    if kind == "search":
        data.setdefault("query", "tv repair")
    if ts_ms is not None:
        data["ts"] = ts_ms
    return json.dumps(data).encode()


def rec(
    offset: int,
    value: bytes | None,
    key: bytes | None = b"u1",
    partition: int = 0,
    timestamp: float | None = T0 / 1000 + 5,
) -> Record:
    return Record(TOPIC, partition, offset, timestamp, key, value)


class Sink:
    """Collects dead letters."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def __call__(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)


@pytest.fixture
async def store(stack: Settings) -> AsyncIterator[ProfileStore]:
    client = client_for(stack)
    prefix = f"zmot:unit-{uuid.uuid4().hex[:10]}:"
    yield ProfileStore(client, prefix, ttl_s=3600)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await close(client)


def offline(records: Sequence[Record], profiler: Profiler) -> dict[str, Profile]:
    events = []
    for r in records:
        out = validate(r)
        assert isinstance(out, Event)
        events.append(out)
    return profiler.replay(events)


def assert_same_profile(live: Profile, want: Profile) -> None:
    assert live.weights.keys() == want.weights.keys()
    for name, value in want.weights.items():
        assert live.weights[name] == pytest.approx(value, rel=STORED_REL)
    assert live.purchases == want.purchases
    assert live.landmark == want.landmark
    assert live.last_ts == want.last_ts
    assert live.n_events == want.n_events


async def test_batch_applies_events_per_user_in_order(store: ProfileStore) -> None:
    profiler = Profiler()
    records = [
        rec(0, ev("u1", "search", T0, query="fernseher reparatur")),
        rec(1, ev("u2", "page_view", T0 + 1000, item_id="tv-1"), key=b"u2"),
        rec(2, ev("u1", "page_view", T0 + 5000, item_id="tv-1")),
        rec(3, ev("u1", "purchase", T0 + 2000, item_id="tv-1")),  # earlier in time than 2
        rec(0, ev("u3", "page_view", T0, item_id="mount"), key=b"u3", partition=1),
    ]
    sink = Sink()
    stats = await process_batch(records, profiler=profiler, store=store, dead_letter=sink)
    assert (stats.consumed, stats.applied, stats.replayed, stats.dead_lettered) == (5, 5, 0, 0)
    assert sink.letters == []
    want = offline(records, profiler)
    for user in ("u1", "u2", "u3"):
        live = await store.get(user)
        assert live is not None
        assert_same_profile(live, want[user])
    u1 = await store.get("u1")
    assert u1 is not None and (u1.partition, u1.offset) == (0, 3)
    assert "tv-1" in u1.purchases


async def test_redelivered_batch_changes_nothing(store: ProfileStore) -> None:
    profiler = Profiler()
    records = [rec(i, ev(f"u{i % 3}", ts_ms=T0 + i), key=f"u{i % 3}".encode()) for i in range(9)]
    await process_batch(records, profiler=profiler, store=store, dead_letter=Sink())
    before = await stored_profiles(store)
    again = await process_batch(records, profiler=profiler, store=store, dead_letter=Sink())
    assert (again.applied, again.replayed) == (0, 9)
    assert await stored_profiles(store) == before
    # A batch overlapping the written one applies only its new messages.
    more = records[6:] + [rec(9, ev("u0", ts_ms=T0 + 9), key=b"u0")]
    third = await process_batch(more, profiler=profiler, store=store, dead_letter=Sink())
    assert (third.applied, third.replayed) == (1, 3)
    u0 = await store.get("u0")
    assert u0 is not None and u0.n_events == 4


async def test_missing_ts_takes_the_record_time(store: ProfileStore) -> None:
    sink = Sink()
    records = [
        rec(0, ev("u1", ts_ms=None), timestamp=1_760_000_000.25),
        rec(1, ev("u1", ts_ms=None), timestamp=None),
        rec(2, ev("u1", ts_ms=None), timestamp=12.0),  # a record time in 1970
    ]
    stats = await process_batch(records, profiler=Profiler(), store=store, dead_letter=sink)
    assert (stats.applied, stats.dead_lettered) == (1, 2)
    profile = await store.get("u1")
    assert profile is not None and profile.last_ts == 1_760_000_000.25
    assert [(x.record.offset, x.field) for x in sink.letters] == [(1, "ts"), (2, "ts")]


MALFORMED: list[tuple[bytes | None, bytes | None, str | None]] = [
    # (key, value, field named in the reason)
    (b"u1", b'{"user_id": "u1", "type": ', None),
    (b"u1", b"\xff\xfe{}", None),
    (b"u1", '{"user_id":"m\u00fcller","type":"search","query":"x"}'.encode("latin-1"), None),
    (b"u1", b"[1, 2]", None),
    (b"u1", b"null", None),
    (b"u1", b"", None),
    (b"u1", None, "value"),
    (b"u1", b"[" * 100_000, None),
    (b"u1", b'{"user_id": 5, "type": "page_view", "item_id": "x"}', "user_id"),
    (b"u1", b'{"type": "page_view", "item_id": "x"}', "user_id"),
    (b"u1", b'{"user_id": "u1", "type": "page_view"}', "item_id"),
    (b"u1", b'{"user_id": "u1", "type": "search", "query": "  "}', "query"),
    (b"u1", b'{"user_id": "u1", "type": "teleport"}', "type"),
    (b"u1", b'{"user_id": "u1", "type": "review", "item_id": "x", "rating": "5"}', "rating"),
    (b"u1", b'{"user_id": "u1", "type": "page_view", "item_id": "x", "ts": 1750000000}', "ts"),
    (b"u1", b'{"user_id": "u1", "type": "page_view", "item_id": "x", "ts": NaN}', "ts"),
    (b"u1", b'{"user_id": "u1", "type": "page_view", "item_id": "x", "ts": true}', "ts"),
    (
        b"u1",
        json.dumps({"user_id": "u1", "type": "search", "query": "q" * 900_000}).encode(),
        "query",
    ),
    (None, ev("u1"), "key"),
    (b"u2", ev("u1"), "key"),
]


async def test_malformed_messages_are_dead_lettered_with_original_bytes(
    store: ProfileStore,
) -> None:
    records = []
    for i, (key, value, _) in enumerate(MALFORMED):
        records.append(rec(2 * i, value, key=key))
        records.append(rec(2 * i + 1, ev("u1", ts_ms=T0 + i)))
    sink = Sink()
    stats = await process_batch(records, profiler=Profiler(), store=store, dead_letter=sink)
    assert stats.dead_lettered == len(MALFORMED) == len(sink.letters)
    assert stats.applied == len(MALFORMED)
    profile = await store.get("u1")
    assert profile is not None and profile.n_events == len(MALFORMED)
    for letter, (key, value, field) in zip(sink.letters, MALFORMED, strict=True):
        assert (letter.record.key, letter.record.value) == (key, value)
        assert letter.field == field, letter
        headers = dict(letter.headers)
        assert headers[SOURCE_HEADER] == f"{TOPIC}/0/{letter.record.offset}".encode()
        assert headers[REASON_HEADER]
        if field:
            assert headers[REASON_HEADER].startswith(field.encode() + b": ")
            assert headers[FIELD_HEADER] == field.encode()


class ConflictingStore(ProfileStore):
    """Another writer applies the user's first event(s) just before each of our writes."""

    def __init__(
        self, base: ProfileStore, profiler: Profiler, rival: list[Record], rounds: int
    ) -> None:
        super().__init__(base.client, base.prefix, base.ttl_ms / 1000)
        self.profiler, self.rival, self.rounds = profiler, rival, rounds

    async def put_many(self, updates: Any, written: list[str] | None = None) -> list[str]:
        if self.rounds:
            self.rounds -= 1
            record = self.rival.pop(0)
            event = validate(record)
            assert isinstance(event, Event)
            current = await self.get(event.user_id) or Profile()
            fence = current.position
            self.profiler.apply(current, event, position=(record.partition, record.offset))
            assert await ProfileStore.put_many(self, [(event.user_id, fence, current)]) == []
        return await ProfileStore.put_many(self, updates, written)


async def test_fence_conflict_rereads_and_reapplies(store: ProfileStore) -> None:
    profiler = Profiler()
    records = [rec(i, ev("u1", ts_ms=T0 + i * 1000, item_id=f"i{i}")) for i in range(4)]
    rival = ConflictingStore(store, profiler, list(records[:2]), rounds=2)
    stats = await process_batch(records, profiler=profiler, store=rival, dead_letter=Sink())
    assert stats.conflicts == 2
    assert (stats.applied, stats.replayed) == (2, 2)
    live = await store.get("u1")
    assert live is not None
    assert_same_profile(live, offline(records, profiler)["u1"])


async def test_fence_that_keeps_moving_fails_the_batch(store: ProfileStore) -> None:
    profiler = Profiler()
    records = [rec(i, ev("u1", ts_ms=T0 + i)) for i in range(10)]
    rival = ConflictingStore(store, profiler, list(records), rounds=10)
    with pytest.raises(BatchError, match="kept moving"):
        await process_batch(
            records, profiler=profiler, store=rival, dead_letter=Sink(), max_attempts=3
        )


class FailingStore(ProfileStore):
    """get_many raises a connection error the first ``failures`` times."""

    def __init__(self, base: ProfileStore, failures: int) -> None:
        super().__init__(base.client, base.prefix, base.ttl_ms / 1000)
        self.failures = failures

    async def get_many(self, user_ids: Sequence[str]) -> list[Profile | None]:
        if self.failures:
            self.failures -= 1
            raise RedisConnectionError("connection refused (simulated)")
        return await super().get_many(user_ids)


async def test_redis_errors_are_retried_then_fail_the_batch(store: ProfileStore) -> None:
    records = [rec(0, ev("u1")), rec(1, b"{broken")]
    sink = Sink()
    stats = await process_batch(
        records,
        profiler=Profiler(),
        store=FailingStore(store, 2),
        dead_letter=sink,
        retry_delay_s=0.01,
    )
    assert (stats.applied, stats.dead_lettered) == (1, 1)
    sink = Sink()
    with pytest.raises(BatchError, match="Redis failed 3 times"):
        await process_batch(
            [rec(2, ev("u1")), rec(3, b"{broken")],
            profiler=Profiler(),
            store=FailingStore(store, 99),
            dead_letter=sink,
            max_attempts=3,
            retry_delay_s=0.01,
        )
    # Nothing of a failed batch is dead-lettered either: it is all redelivered.
    assert sink.letters == []


async def test_dead_letter_failure_fails_the_batch(store: ProfileStore) -> None:
    async def broken_sink(letters: Sequence[DeadLetter]) -> None:
        raise OSError("broker down")

    with pytest.raises(OSError):
        await process_batch(
            [rec(0, b"nope")], profiler=Profiler(), store=store, dead_letter=broken_sink
        )


async def test_event_that_breaks_the_profiler_is_dead_lettered(store: ProfileStore) -> None:
    class Exploding(Profiler):
        def apply(
            self, profile: Profile, event: Event, position: tuple[int, int] | None = None
        ) -> bool:
            if event.item_id == "bomb":
                raise ZeroDivisionError("boom")
            return super().apply(profile, event, position)

    records = [
        rec(0, ev("u1", item_id="a")),
        rec(1, ev("u1", item_id="bomb")),
        rec(2, ev("u1", item_id="b")),
    ]
    sink = Sink()
    stats = await process_batch(records, profiler=Exploding(), store=store, dead_letter=sink)
    assert (stats.applied, stats.dead_lettered) == (2, 1)
    assert sink.letters[0].record.offset == 1
    assert "ZeroDivisionError" in sink.letters[0].reason


# --- a batch written in several script calls ----------------------------------------------


class ChunkedStore(ProfileStore):
    """A store writing ``write_chunk`` profiles per script call that counts its calls and
    fails the ``fail_at``-th one (1-based, before it is sent) with a Redis error, once."""

    def __init__(self, base: ProfileStore, write_chunk: int, fail_at: int | None = None) -> None:
        super().__init__(base.client, base.prefix, base.ttl_ms / 1000, write_chunk=write_chunk)
        self.calls: list[list[str]] = []
        self.fail_at = fail_at
        replace = self._replace

        async def counted(keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
            if self.fail_at is not None and len(self.calls) + 1 == self.fail_at:
                self.fail_at = None
                raise RedisConnectionError("connection lost between chunks (simulated)")
            self.calls.append(list(keys))
            return await replace(keys, args, client)

        self._replace = counted  # type: ignore[assignment]


def _spread(users: int, per_user: int, partitions: int = 2) -> list[Record]:
    """``per_user`` events of each of ``users`` users, interleaved, a user in one partition."""
    offsets = [0] * partitions
    out = []
    for i in range(per_user):
        for u in range(users):
            p = u % partitions
            user = f"u{u}"
            value = ev(user, ts_ms=T0 + i * 1000 + u, item_id=f"i{(i + u) % 5}")
            out.append(rec(offsets[p], value, key=user.encode(), partition=p))
            offsets[p] += 1
    return out


async def test_a_batch_bigger_than_the_write_chunk_is_written_in_several_calls(
    store: ProfileStore,
) -> None:
    profiler = Profiler()
    records = _spread(users=10, per_user=3)
    chunked = ChunkedStore(store, write_chunk=4)
    stats = await process_batch(records, profiler=profiler, store=chunked, dead_letter=Sink())
    assert (stats.applied, stats.replayed, stats.conflicts) == (30, 0, 0)
    # 10 profiles in calls of 4, 4 and 2, every profile in exactly one of them
    assert [len(keys) for keys in chunked.calls] == [4, 4, 2]
    assert sorted(k for keys in chunked.calls for k in keys) == sorted(
        store.key(f"u{u}") for u in range(10)
    )
    want = offline(records, profiler)
    assert sorted(await store.user_ids()) == sorted(want)
    for user, profile in want.items():
        live = await store.get(user)
        assert live is not None
        assert_same_profile(live, profile)


async def test_a_failure_between_write_chunks_is_retried_without_repeating_the_written(
    store: ProfileStore,
) -> None:
    """The first chunk is in Redis when the second fails: the retry reads, applies and
    writes only the users not written, and every event counts as applied once."""
    profiler = Profiler()
    records = _spread(users=10, per_user=3)
    chunked = ChunkedStore(store, write_chunk=4, fail_at=2)
    stats = await process_batch(
        records, profiler=profiler, store=chunked, dead_letter=Sink(), retry_delay_s=0.01
    )
    assert (stats.applied, stats.replayed, stats.conflicts) == (30, 0, 0)
    # the retry wrote the 6 users the failed attempt had not
    assert [len(keys) for keys in chunked.calls] == [4, 4, 2]
    want = offline(records, profiler)
    for user, profile in want.items():
        live = await store.get(user)
        assert live is not None
        assert_same_profile(live, profile)


async def test_a_crash_between_write_chunks_loses_and_repeats_nothing_on_redelivery(
    store: ProfileStore,
) -> None:
    """A batch that fails after its first chunk is not acked and its partitions' applied
    offsets (the counters' ``_off``) do not move; read again, the fence skips the profiles
    already written and applies the rest: the profiles equal the offline replay."""
    profiler = Profiler()
    records = _spread(users=10, per_user=3)
    feedback = FeedbackStore(store.client, store.prefix, 2)
    crashing = ChunkedStore(store, write_chunk=4, fail_at=2)
    with pytest.raises(BatchError, match="Redis failed"):
        await process_batch(
            records,
            profiler=profiler,
            store=crashing,
            dead_letter=Sink(),
            feedback=feedback,
            max_attempts=1,
        )
    first = {user for user in await store.user_ids()}
    assert len(first) == 4  # the first chunk landed, nothing after it
    assert await feedback.offsets([0, 1]) == {0: None, 1: None}  # no applied offset moved
    again = await process_batch(
        records,
        profiler=profiler,
        store=ChunkedStore(store, write_chunk=4),
        dead_letter=Sink(),
        feedback=feedback,
    )
    assert (again.applied, again.replayed) == (18, 12)  # 6 users x 3 new, 4 x 3 fenced
    assert await feedback.offsets([0, 1]) == {0: 14, 1: 14}
    want = offline(records, profiler)
    for user, profile in want.items():
        live = await store.get(user)
        assert live is not None
        assert_same_profile(live, profile)  # n_events among them: nothing applied twice


# --- property: batches with redeliveries give the offline replay ------------------------------

USERS = ["alice", "bob", "carol"]
KINDS = ["page_view", "search", "add_to_cart", "purchase", "impression", "click"]

event_st = st.builds(
    lambda user, kind, dt, item: (user, kind, T0 + dt, item),
    st.sampled_from(USERS),
    st.sampled_from(KINDS),
    st.integers(-3_600_000 * 24 * 30, 3_600_000 * 24 * 30),  # out of order by up to 30 days
    st.sampled_from(["tv-1", "tv-2", "mount", "soundbar"]),
)


def _records(events: list[tuple[str, str, int, str]], partitions: int) -> list[Record]:
    """Messages as Kafka would hold them: a user's events in one partition, in order."""
    next_offset = [0] * partitions
    out = []
    for user, kind, ts, item in events:
        extra: dict[str, Any] = {"item_id": item}
        if kind == "search":
            extra = {"query": f"{item} kaufen"}
        elif kind in {"impression", "click"}:
            extra = {"offer_id": f"o-{item}"}
        p = USERS.index(user) % partitions
        out.append(
            Record(TOPIC, p, next_offset[p], None, user.encode(), ev(user, kind, ts, **extra))
        )
        next_offset[p] += 1
    return out


@hyp_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.lists(event_st, min_size=1, max_size=40),
    batch_size=st.integers(1, 15),
    rewind=st.lists(st.integers(0, 20), max_size=6),
    write_chunk=st.integers(1, 3),
)
def test_batches_with_redeliveries_equal_offline_replay(
    stack: Settings,
    events: list[tuple[str, str, int, str]],
    batch_size: int,
    rewind: list[int],
    write_chunk: int,
) -> None:
    records = _records(events, partitions=2)
    # Kafka interleaves partitions arbitrarily; keep each partition's order.
    order = sorted(records, key=lambda r: (r.offset, r.partition))
    # At-least-once: after a batch the consumer may rewind (a restart from an older commit) and
    # read an earlier stretch again; it never skips ahead.
    batches: list[list[Record]] = []
    rewinds = iter(rewind)
    position = 0
    while position < len(order):
        batch = order[position : position + batch_size]
        batches.append(batch)
        position = max(0, position + len(batch) - next(rewinds, 0))
    profiler = Profiler()
    want = offline(records, profiler)

    async def run() -> None:
        client = client_for(stack)
        store = ProfileStore(
            client, f"zmot:prop-{uuid.uuid4().hex[:10]}:", ttl_s=600, write_chunk=write_chunk
        )
        try:
            for batch in batches:
                if batch:
                    await process_batch(batch, profiler=profiler, store=store, dead_letter=Sink())
            for user, profile in want.items():
                live = await store.get(user)
                assert live is not None
                assert_same_profile(live, profile)
        finally:
            keys = [k async for k in client.scan_iter(match=f"{store.prefix}*")]
            if keys:
                await client.delete(*keys)
            await close(client)

    asyncio.run(run())


async def test_freshness_is_measured_from_the_record_as_well_as_from_event_time(
    store: ProfileStore,
) -> None:
    """A replay of last week's history is a week old in event time, fresh in record time."""
    now = time.time()
    week_ago_ms = int((now - 7 * 86_400) * 1000)
    records = [rec(i, ev("u1", ts_ms=week_ago_ms + i), timestamp=now - 0.5) for i in range(3)]
    metrics = WorkerMetrics()
    await process_batch(
        records, profiler=Profiler(), store=store, dead_letter=Sink(), metrics=metrics
    )
    families = {f.name: f for f in text_string_to_metric_families(metrics.render()[0].decode())}

    def mean(name: str) -> float:
        samples = {s.name: s.value for s in families[name].samples}
        assert samples[f"{name}_count"] == 3
        return samples[f"{name}_sum"] / 3

    assert mean("zmot_event_freshness_seconds") > 7 * 86_400
    assert 0.5 <= mean("zmot_record_freshness_seconds") < 60
