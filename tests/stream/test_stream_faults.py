"""The stream under real faults: the worker killed with SIGKILL, Redis killed and wiped.

Each test runs its own redis-server (AOF, as ``zmot infra``) and real worker processes, breaks
them mid-stream, and then checks the state against an offline replay of the same events:
every profile (features, weights to 1e-6 as stored in single precision, event counts,
fence), every partition's counters and applied offset, and the dead-letter topic. Recovery
times are printed (``pytest -s``), and asserted only against generous bounds: the machine is
shared.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from recommender.adapters.codec import OFFSET_FIELD, counter_field, counters_key
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.redis_store import connect
from recommender.core.events import Event, parse_event
from recommender.core.feedback import increments
from recommender.core.settings import Settings
from tests.stream.test_stream_worker import (
    Message,
    assert_profiles_are_the_offline_replay,
    make_events,
    malformed_messages,
    produce,
    read_all,
)
from tests.support.kafka import group_lag
from tests.support.processes import WorkerProcess
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

RECOVERY_BOUND_S = 60.0
"""A restarted worker must make progress within this (measured: a few seconds)."""


class Stream:
    """Valid events with scattered bad messages, produced, and what the offline replay says."""

    def __init__(self, n_events: int, users: int, n_bad: int, seed: int) -> None:
        rng = random.Random(seed)
        self.events, good = make_events(n_events, users=users, seed=seed, gap_ms=1_000)
        bad = [m for m, _ in malformed_messages(n_bad + 10, seed=seed)][10:]  # not the 900 KB
        flags = [True] * len(bad) + [False] * len(good)
        rng.shuffle(flags)
        bad_it, good_it = iter(bad), iter(good)
        self.messages: list[tuple[Message, bool]] = [
            (next(bad_it), False) if flag else (next(good_it), True) for flag in flags
        ]
        self.positions: list[tuple[int, int]] = []

    async def produce(self, settings: Settings) -> None:
        self.positions = await produce(settings, [m for m, _ in self.messages])

    @property
    def ends(self) -> dict[int, int]:
        """partition -> last offset produced."""
        out: dict[int, int] = {}
        for partition, offset in self.positions:
            out[partition] = max(out.get(partition, -1), offset)
        return out

    def bad_sources(self, topic: str) -> set[str]:
        return {
            f"{topic}/{p}/{o}"
            for (p, o), (_, ok) in zip(self.positions, self.messages, strict=True)
            if not ok
        }

    def valid_by_partition(self) -> dict[int, list[Event]]:
        events = iter(self.events)
        out: dict[int, list[Event]] = {}
        for (partition, _), (_, ok) in zip(self.positions, self.messages, strict=True):
            if ok:
                out.setdefault(partition, []).append(parse_event(json.dumps(next(events))))
        return out


async def applied_offsets(settings: Settings, partitions: list[int]) -> dict[int, int | None]:
    client = connect(settings.redis_url, socket_timeout=2.0)
    try:
        feedback = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
        return await feedback.offsets(partitions)
    finally:
        await client.aclose()


async def applied_count(settings: Settings, partitions: list[int]) -> int:
    """Messages Redis says are applied: the sum over partitions of ``_off + 1``."""
    marks = await applied_offsets(settings, partitions)
    return sum(0 if mark is None else mark + 1 for mark in marks.values())


async def wait_applied(
    settings: Settings,
    ends: dict[int, int],
    proc: WorkerProcess,
    *,
    at_least: int | None = None,
    timeout_s: float = 180.0,
) -> float:
    """Wait until Redis has applied ``at_least`` messages (default: every one up to ``ends``);
    the seconds it took. Fails when the worker exits or the time is up."""
    started = time.monotonic()
    want = sum(end + 1 for end in ends.values()) if at_least is None else at_least
    have = 0
    while time.monotonic() - started < timeout_s:
        assert proc.alive, f"worker exited with {proc.proc.returncode}:\n{proc.log_text()[-3000:]}"
        try:
            have = await applied_count(settings, sorted(ends))
        except OSError:
            have = 0
        if have >= want:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"{have} of {want} messages applied after {timeout_s} s")


async def written_not_committed(settings: Settings, ends: dict[int, int]) -> int:
    """Messages Redis has applied beyond the group's committed offsets (read in that order)."""
    lag = await group_lag(settings)  # end offset (every message produced) - committed
    committed = sum(end + 1 - lag[p] for p, end in ends.items())
    return await applied_count(settings, sorted(ends)) - committed


async def kill_between_write_and_commit(
    settings: Settings,
    ends: dict[int, int],
    proc: WorkerProcess,
    start: Callable[[], WorkerProcess],
) -> tuple[WorkerProcess, int]:
    """SIGKILL ``proc`` at a moment when Redis holds writes that Kafka has not committed (the
    worker commits about once a second), checked again once it is dead; a kill that missed
    the window is retried. The dead worker and how many messages were written, not committed."""
    for _ in range(10):
        while await written_not_committed(settings, ends) <= 0:
            assert proc.alive
            await asyncio.sleep(0.01)
        proc.proc.kill()
        proc.proc.wait()
        ahead = await written_not_committed(settings, ends)
        if ahead > 0:
            return proc, ahead
        proc = start()
        await wait_applied(
            settings, ends, proc, at_least=await applied_count(settings, sorted(ends)) + 1
        )
    raise AssertionError("never killed the worker between a Redis write and its commit")


async def assert_state_is_the_offline_replay(settings: Settings, stream: Stream) -> None:
    """Profiles, counters, applied offsets and dead letters are what one clean pass gives."""
    await assert_profiles_are_the_offline_replay(settings, stream.events)
    client = connect(settings.redis_url)
    try:
        by_partition = stream.valid_by_partition()
        for partition, end in stream.ends.items():
            stored = await client.hgetall(counters_key(settings.redis_prefix, partition))
            expected = {
                counter_field(k): str(v)
                for k, v in increments(by_partition.get(partition, [])).items()
            }
            expected[OFFSET_FIELD] = str(end)
            assert {k.decode(): v.decode() for k, v in stored.items()} == expected, partition
    finally:
        await client.aclose()

    letters = await read_all(settings, settings.dlq_topic)
    sources = Counter(dict(r.headers)["zmot-source"].decode() for r in letters)
    assert set(sources) == stream.bad_sources(settings.events_topic)
    repeated = sum(n - 1 for n in sources.values())
    print(f"dead letters: {len(letters)} for {len(sources)} bad messages ({repeated} repeats)")  # noqa: T201


def with_redis(isolated: Settings, server: RedisServer, **overrides: Any) -> Settings:
    return isolated.model_copy(update={"redis_url": server.url, **overrides})


async def test_sigkill_of_the_worker_mid_stream_loses_and_repeats_nothing(
    isolated: Settings, redis_server: RedisServer, worker: Callable[..., WorkerProcess]
) -> None:
    settings = with_redis(isolated, redis_server, worker_instance_id="fault-worker-1")
    stream = Stream(50_000, users=1_000, n_bad=300, seed=21)
    await stream.produce(settings)
    ends = stream.ends
    total = sum(end + 1 for end in ends.values())

    rng = random.Random(8)
    proc = worker(settings)
    recoveries: list[float] = []
    uncommitted: list[int] = []
    for kill in range(4):
        # Somewhere in the next sixth of the stream: mid-batch, between write and commit, ...
        target = int(total * (kill + rng.uniform(0.3, 1.0)) / 6)
        await wait_applied(settings, ends, proc, at_least=target)
        if kill == 1:
            # ... and once for sure where Redis holds writes Kafka has not committed yet.
            proc, ahead = await kill_between_write_and_commit(
                settings, ends, proc, lambda: worker(settings)
            )
            uncommitted.append(ahead)
        else:
            proc.proc.kill()
            proc.proc.wait()
        killed_at = time.monotonic()
        before = await applied_count(settings, sorted(ends))
        proc = worker(settings)
        await wait_applied(settings, ends, proc, at_least=before + 1, timeout_s=RECOVERY_BOUND_S)
        recoveries.append(time.monotonic() - killed_at)
    print(f"progress again after each kill -9 + restart: {[round(s, 1) for s in recoveries]} s")  # noqa: T201
    print(f"one kill with {uncommitted[0]} messages written to Redis but not committed")  # noqa: T201
    await wait_applied(settings, ends, proc)
    await assert_state_is_the_offline_replay(settings, stream)


async def test_a_wiped_redis_is_rebuilt_from_the_topic(
    isolated: Settings, redis_server: RedisServer, worker: Callable[..., WorkerProcess]
) -> None:
    settings = with_redis(isolated, redis_server)
    stream = Stream(5_000, users=100, n_bad=50, seed=22)
    await stream.produce(settings)
    proc = worker(settings)
    await wait_applied(settings, stream.ends, proc)
    await assert_state_is_the_offline_replay(settings, stream)

    client = connect(settings.redis_url)
    await client.flushall()
    await client.aclose()
    # The idle worker notices that Redis went back and stops (exit 1) ...
    assert proc.wait_exit(60) == 1
    assert "Redis went back" in proc.log_text()
    # ... and the next start re-reads the topic from offset 0.
    again = worker(settings)
    took = await wait_applied(settings, stream.ends, again)
    print(f"rebuilt {sum(e + 1 for e in stream.ends.values())} messages in {took:.1f} s")  # noqa: T201
    assert "re-reading from 0" in again.log_text()
    await assert_state_is_the_offline_replay(settings, stream)


async def test_sigkill_of_redis_mid_stream_is_repaired_from_kafka(
    isolated: Settings, redis_server: RedisServer, worker: Callable[..., WorkerProcess]
) -> None:
    settings = with_redis(isolated, redis_server)
    stream = Stream(12_000, users=300, n_bad=100, seed=23)
    await stream.produce(settings)
    ends = stream.ends
    proc = worker(settings)
    await wait_applied(settings, ends, proc, at_least=sum(e + 1 for e in ends.values()) // 3)
    redis_server.kill()  # no shutdown: up to a second of writes never reaches the AOF
    # Batches fail on Redis; after its retries the worker stops with the batch uncommitted.
    assert proc.wait_exit(60) == 1
    redis_server.start()
    again = worker(settings)
    await wait_applied(settings, ends, again)
    await assert_state_is_the_offline_replay(settings, stream)
