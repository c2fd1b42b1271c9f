"""The stream worker end to end: Kafka -> worker subprocess -> Redis (and the DLQ)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from recommender.adapters.redis_client import client_for, close
from recommender.adapters.redis_store import ProfileStore
from recommender.core.events import parse_event
from recommender.core.profile import Profile
from recommender.core.replay import Profiler
from recommender.core.settings import Settings
from tests.support.kafka import topic_partitions
from tests.support.profiles import STORED_REL, stored_profiles

pytestmark = pytest.mark.integration

# Twelve hours ago, in epoch ms. Record timestamps must be recent: a broker deletes records
# older than its retention (by their timestamp) even in the middle of a test, and rejects
# records more than an hour in the future.
T0 = int(time.time() * 1000) - 12 * 3_600_000
Message = tuple[bytes | None, bytes | None, int | None]  # key, value, record timestamp (ms)


async def produce(settings: Settings, messages: list[Message]) -> list[tuple[int, int]]:
    """Produce in order; the (partition, offset) of each message."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_request_size=1_048_576,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(settings.events_topic, value, key=key, timestamp_ms=ts)
            for key, value, ts in messages
        ]
        return [(m.partition, m.offset) for m in [await f for f in futures]]
    finally:
        await producer.stop()


async def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1_048_576,
    )
    await consumer.start()
    try:
        tps = await topic_partitions(settings.kafka_bootstrap, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                return out
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(records)
    finally:
        await consumer.stop()


async def read_profiles(settings: Settings) -> dict[str, Profile]:
    """user_id -> profile of every profile under the settings' prefix, read through the store."""
    client = client_for(settings)
    try:
        return await stored_profiles(ProfileStore(client, settings.redis_prefix, ttl_s=600))
    finally:
        await close(client)


async def drop_prefix(settings: Settings) -> None:
    client = client_for(settings)
    try:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await close(client)


@pytest.fixture(autouse=True)
async def _drop_profiles(isolated: Settings) -> AsyncIterator[None]:
    """Remove the test's profiles from Redis whatever the outcome."""
    yield
    await drop_prefix(isolated)


def listens_on_loopback_only(port: int) -> bool:
    """True when the only TCP listener on ``port`` is bound to 127.0.0.1 (from /proc/net)."""
    binds = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            addr, hexport = cols[1].split(":")
            if int(hexport, 16) == port and cols[3] == "0A":  # LISTEN
                binds.append(addr)
    return bool(binds) and all(addr == "0100007F" for addr in binds)


def make_events(
    n: int, users: int, seed: int, gap_ms: int = 10_000
) -> tuple[list[dict[str, Any]], list[Message]]:
    """Browsing events (some out of order in time, some without ts) and their messages.

    Consecutive events are up to ``gap_ms`` apart: ``n * gap_ms / 2`` must stay within the
    twelve hours before now that the records start at.
    """
    rng = random.Random(seed)
    items = [f"item-{i}" for i in range(40)]
    kinds = ["page_view"] * 6 + ["search"] * 3 + ["add_to_cart"] * 2 + ["purchase", "click"]
    events, messages = [], []
    clock = T0
    for i in range(n):
        user = f"user-{rng.randrange(users)}"
        kind = rng.choice(kinds)
        clock += rng.randrange(0, gap_ms)  # 4,000 events 10 s apart span about 5.5 hours
        event: dict[str, Any] = {"user_id": user, "type": kind, "event_id": f"e{i}"}
        if kind == "search":
            event["query"] = rng.choice(["fernseher reparatur", "tv repair", "soundbar", "hdmi"])
        elif kind == "click":
            event["offer_id"] = f"offer-{rng.randrange(5)}"
        else:
            event["item_id"] = rng.choice(items)
        record_ts = clock
        if rng.random() < 0.05:
            record_ts = clock + 1234  # no ts in the event: the record time counts
        elif rng.random() < 0.2:
            event["ts"] = clock - rng.randrange(0, 3 * 86_400_000)  # late, out of order
        else:
            event["ts"] = clock
        events.append({**event, "ts": event.get("ts", record_ts)})
        messages.append((user.encode(), json.dumps(event).encode(), record_ts))
    return events, messages


async def assert_profiles_are_the_offline_replay(
    settings: Settings, events: list[dict[str, Any]]
) -> None:
    """Every stored profile under the settings' prefix is the offline replay of ``events``
    (in that order) through the worker's own ``Profiler``, and no other profile is stored."""
    want = Profiler().replay(parse_event(json.dumps(e)) for e in events)
    live = await read_profiles(settings)
    assert set(live) == set(want)
    for user, profile in live.items():
        assert_profile_equal(profile, want[user], user)


def assert_profile_equal(live: Profile, want: Profile, user: str) -> None:
    assert live.weights.keys() == want.weights.keys(), user
    for name, value in want.weights.items():
        assert live.weights[name] == pytest.approx(value, rel=STORED_REL), (user, name)
    assert live.landmark == pytest.approx(want.landmark, rel=1e-12), user
    assert live.last_ts == want.last_ts, user
    assert live.purchases == want.purchases, user
    assert live.n_events == want.n_events, user


async def test_replay_from_offset_zero_changes_no_profile_and_matches_offline(
    isolated: Settings, worker: Callable[..., Any], caught_up: Callable[..., Awaitable[None]]
) -> None:
    events, messages = make_events(3000, users=25, seed=7)
    positions = await produce(isolated, messages)

    first = worker(isolated)
    await caught_up(isolated, first, timeout_s=90)
    assert listens_on_loopback_only(first.settings.worker_web_port)
    snapshot = await read_profiles(isolated)
    assert len(snapshot) == len({e["user_id"] for e in events})
    assert first.stop() == 0

    # The live profiles are the offline replay of the same events in produced order.
    profiler = Profiler()
    want = profiler.replay(parse_event(json.dumps(e)) for e in events)
    assert set(snapshot) == set(want)
    last_pos: dict[str, tuple[int, int]] = {}
    for event, position in zip(events, positions, strict=True):
        last_pos[event["user_id"]] = position
    for user, live in snapshot.items():
        assert_profile_equal(live, want[user], user)
        assert (live.partition, live.offset) == last_pos[user]

    # A new consumer group rereads every message from offset 0: the fence skips them all.
    again = isolated.model_copy(update={"consumer_group": isolated.consumer_group + "-again"})
    second = worker(again)
    await caught_up(again, second, timeout_s=90)
    assert await read_profiles(isolated) == snapshot
    assert second.stop() == 0
    assert "consumed=3000 applied=0 replayed=3000 dead_lettered=0" in second.log_text()


def _bad(
    value: Any, field: str | None, key: bytes | None = b"user-1"
) -> tuple[Message, str | None]:
    raw = value if value is None or isinstance(value, bytes) else json.dumps(value).encode()
    return (key, raw, None), field


def malformed_messages(n: int, seed: int) -> list[tuple[Message, str | None]]:
    """``n`` malformed messages, each with the field its dead-letter reason must name."""
    rng = random.Random(seed)
    u = "user-1"
    makers: list[Callable[[int], tuple[Message, str | None]]] = [
        lambda i: _bad(b'{"user_id": "user-1", "type": "pa', None),
        lambda i: _bad({"user_id": i, "type": "search", "query": "tv"}, "user_id"),
        lambda i: _bad({"user_id": u, "type": "review", "item_id": "x", "rating": "5"}, "rating"),
        lambda i: _bad({"user_id": u, "type": "page_view"}, "item_id"),
        lambda i: _bad({"type": "page_view", "item_id": "x"}, "user_id"),
        lambda i: _bad(b"\xff\xfe\xfd" + bytes([i % 256]), None),
        lambda i: _bad('{"user_id": "m\u00fcller", "type": "x"}'.encode("latin-1"), None),
        lambda i: _bad([i, u, "page_view"], None),
        lambda i: _bad(b"", None),
        lambda i: _bad(None, "value"),
        lambda i: _bad({"user_id": u, "type": "page_view", "item_id": "x"}, "key", key=None),
        lambda i: _bad({"user_id": u, "type": "page_view", "item_id": "x", "ts": T0 // 1000}, "ts"),
        lambda i: _bad({"user_id": u, "type": "teleport"}, "type"),
    ]
    out = [rng.choice(makers)(i) for i in range(n - 10)]
    # 900 KB strings: within the broker's 1 MB limit, far over the contract's.
    huge = "x" * 900_000
    out += [_bad({"user_id": "user-2", "type": "search", "query": huge}, "query")] * 5
    out += [_bad({"user_id": huge, "type": "page_view", "item_id": "x"}, "user_id")] * 5
    return out


N_MALFORMED = 10_000


async def test_malformed_messages_land_in_the_dlq_and_good_ones_apply(
    isolated: Settings, worker: Callable[..., Any], caught_up: Callable[..., Awaitable[None]]
) -> None:
    rng = random.Random(11)
    bad = malformed_messages(N_MALFORMED, seed=3)
    _, good_messages = make_events(600, users=12, seed=5)
    # Bad messages scattered between the good ones; the good ones keep their order.
    is_bad = [True] * len(bad) + [False] * len(good_messages)
    rng.shuffle(is_bad)
    bad_it, good_it = iter(bad), iter(good_messages)
    ordered: list[tuple[Message, str | None, bool]] = []
    for flag in is_bad:
        if flag:
            message, field = next(bad_it)
            ordered.append((message, field, False))
        else:
            ordered.append((next(good_it), None, True))
    positions = await produce(isolated, [m for m, _, _ in ordered])
    by_source = {
        f"{isolated.events_topic}/{p}/{o}": item
        for (p, o), item in zip(positions, ordered, strict=True)
    }

    proc = worker(isolated)
    await caught_up(isolated, proc, timeout_s=120)

    dead = await read_all(isolated, isolated.dlq_topic)
    assert len(dead) == N_MALFORMED
    seen_fields: Counter[str] = Counter()
    sources = set()
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        (key, value, _), field, is_good = by_source[headers["zmot-source"]]
        sources.add(headers["zmot-source"])
        assert not is_good
        assert (record.key, record.value) == (key, value)
        assert headers["zmot-reason"]
        if field is not None:
            assert headers["zmot-reason"].startswith(f"{field}: "), headers
            assert headers["zmot-field"] == field
            seen_fields[field] += 1
    assert len(sources) == N_MALFORMED
    assert {"user_id", "item_id", "rating", "key", "ts", "value", "query", "type"} <= set(
        seen_fields
    )

    good_per_user = Counter(m[0].decode() for m, _, ok in ordered if ok and m[0])
    profiles = await read_profiles(isolated)
    assert {u: p.n_events for u, p in profiles.items()} == dict(good_per_user)
    assert proc.alive
    assert proc.stop() == 0
    assert f"dead_lettered={N_MALFORMED}" in proc.log_text()


async def test_a_batch_that_cannot_be_written_stops_the_worker_uncommitted(
    isolated: Settings, worker: Callable[..., Any], caught_up: Callable[..., Awaitable[None]]
) -> None:
    poisoned = b"user-3"
    _, messages = make_events(600, users=10, seed=9)
    before = [m for m in messages[:300] if m[0] != poisoned]
    after = messages[300:]
    client = client_for(isolated)
    store = ProfileStore(client, isolated.redis_prefix, 600)
    try:
        await produce(isolated, before)
        proc = worker(isolated)
        await caught_up(isolated, proc)

        # A profile key of the wrong type makes every read of that user fail (WRONGTYPE).
        await client.sadd(store.key(poisoned.decode()), "not a profile")
        positions = await produce(isolated, after)
        assert proc.wait_exit(60) == 1  # BatchError, not the watchdog (70)
        log = proc.log_text()
        assert "stays uncommitted" in log and "WRONGTYPE" in log

        admin = AIOKafkaAdminClient(bootstrap_servers=isolated.kafka_bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(isolated.consumer_group)
        finally:
            await admin.close()
        partition, first_offset = next(
            pos for (key, _, _), pos in zip(after, positions, strict=True) if key == poisoned
        )
        meta = committed[TopicPartition(isolated.events_topic, partition)]
        first_after = min(o for p, o in positions if p == partition)
        assert first_after <= meta.offset <= first_offset

        # Repaired, a new worker of the same group applies every event exactly once.
        await client.delete(store.key(poisoned.decode()))
        proc2 = worker(isolated)
        await caught_up(isolated, proc2)
        counts = Counter(key.decode() for key, _, _ in before + after if key)
        profiles = await read_profiles(isolated)
        assert {u: p.n_events for u, p in profiles.items()} == dict(counts)
        assert proc2.stop() == 0
    finally:
        await close(client)


async def test_rebalances_between_two_workers_apply_every_event_once(
    isolated: Settings, worker: Callable[..., Any], caught_up: Callable[..., Awaitable[None]]
) -> None:
    events, messages = make_events(4000, users=40, seed=13)
    chunks = [messages[i : i + 200] for i in range(0, len(messages), 200)]

    async def produce_slowly() -> None:
        for chunk in chunks:
            await produce(isolated, chunk)
            await asyncio.sleep(0.25)

    producing = asyncio.create_task(produce_slowly())
    first = worker(isolated)
    await asyncio.sleep(2.0)
    second = worker(isolated)  # joins: partitions move while events flow
    await asyncio.sleep(3.0)
    assert first.stop() == 0  # leaves: its partitions move back
    await producing
    await caught_up(isolated, second, timeout_s=90)

    await assert_profiles_are_the_offline_replay(isolated, events)
    assert second.stop() == 0
