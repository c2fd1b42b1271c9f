"""Two workers in one consumer group: they share the partitions, and when one stops mid-replay
the other takes its partitions over, with nothing lost and nothing applied twice."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx
import pytest

from recommender.adapters.metrics import counter_value, parse_exposition
from recommender.core.settings import Settings
from tests.stream.test_stream_faults import (
    Stream,
    applied_count,
    assert_state_is_the_offline_replay,
    wait_applied,
)
from tests.support.processes import WorkerProcess

pytestmark = pytest.mark.integration


async def wait_consuming(proc: WorkerProcess, timeout_s: float = 120.0) -> float:
    """Wait until the worker's own metrics count a consumed message (it holds a partition)."""
    url = f"http://127.0.0.1:{proc.settings.worker_web_port}/metrics"
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while time.monotonic() < deadline:
            assert proc.alive, proc.log_text()[-3000:]
            try:
                families = parse_exposition((await client.get(url)).text)
                seen = counter_value(families, "zmot_events_consumed")
                if seen > 0:
                    return seen
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"worker consumed nothing within {timeout_s} s")


def consumed(proc: WorkerProcess) -> int:
    """Messages the stopped worker says it consumed (its last log line)."""
    found = re.findall(r"worker stopped: consumed=(\d+)", proc.log_text())
    assert found, proc.log_text()[-3000:]
    return int(found[-1])


async def test_two_workers_share_the_partitions_and_survive_a_rebalance(
    isolated: Settings, worker: Callable[..., WorkerProcess]
) -> None:
    # Batches of two events (a few Redis round trips each) hold each worker to about a
    # thousand events/s, so the stream outlasts the group's first rebalances: at full speed
    # one worker drains all 20,000 events in about a second, before the second has even
    # joined (a slow start on a busy machine), and nothing is left to take over.
    settings = isolated.model_copy(update={"batch_size": 2})
    assert settings.topic_partitions >= 2
    stream = Stream(20_000, users=600, n_bad=40, seed=31)
    await stream.produce(settings)
    ends = stream.ends
    total = sum(end + 1 for end in ends.values())
    first = worker(settings, worker_instance_id="scale-a")
    second = worker(settings, worker_instance_id="scale-b")
    # Both hold partitions and are working through the stream: stop one mid-replay.
    await wait_consuming(second)
    await wait_consuming(first)
    assert await applied_count(settings, sorted(ends)) < total, "no replay left to interrupt"
    assert second.stop() == 0
    # The group rebalances: the survivor takes the stopped worker's partitions over.
    await wait_applied(settings, ends, first)
    assert first.stop() == 0
    by_first, by_second = consumed(first), consumed(second)
    print(f"consumed: {by_first} by the survivor, {by_second} by the stopped worker")  # noqa: T201
    assert by_second > 0, "the second worker never got a partition"
    assert by_first + by_second >= total  # re-reads after the rebalance may add, never lose
    assert await applied_count(settings, sorted(ends)) == total
    await assert_state_is_the_offline_replay(settings, stream)
