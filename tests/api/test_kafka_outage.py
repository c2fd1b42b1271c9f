"""POST /v1/events while its Kafka broker is killed with SIGKILL and restarted.

The test runs a broker of its own (never the session's): a client posts batches with its own
event ids and retries every 503 after Retry-After, as the API asks. Requests during the outage
must get 503 with Retry-After within the produce timeout; once the broker is back every batch
is accepted; the topic then holds every accepted event, some more than once, and the replay
that dedupes by event id (the worker's) counts each exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recommender.adapters.localstack.kafka import down_kafka, kafka_markers, up_kafka
from recommender.adapters.localstack.paths import paths
from recommender.adapters.localstack.processes import owned_pid
from recommender.core.events import parse_event
from recommender.core.replay import Profiler
from recommender.core.settings import Settings
from tests.api.support import ServeFactory, read_topic

pytestmark = pytest.mark.integration

PRODUCE_TIMEOUT_S = 2.0
HTTP_MARGIN_S = 3.0  # event loop and HTTP on a loaded two-core machine


def two_free_ports() -> int:
    """A loopback port P with P + 1 free too (the broker's controller port)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two adjacent free ports")


@pytest.fixture
def own_kafka(isolated: Settings, tmp_path: Path) -> Iterator[Settings]:
    """``isolated`` with a broker of this test (its topics created), stopped at teardown."""
    settings = isolated.model_copy(
        update={
            "kafka_bootstrap": f"127.0.0.1:{two_free_ports()}",
            "state_dir": tmp_path / "state",
            "produce_timeout_s": PRODUCE_TIMEOUT_S,
        }
    )
    up_kafka(settings, paths(settings), lambda line: None)
    yield settings
    down_kafka(paths(settings), lambda line: None)


def kill_broker(settings: Settings) -> None:
    p = paths(settings)
    pid = owned_pid(p.kafka_pid, *kafka_markers(p))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while owned_pid(p.kafka_pid, *kafka_markers(p)) is not None:
        time.sleep(0.05)


def batch(n: int, number: int) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [
        {
            "user_id": f"out-{i % 7}",
            "type": "page_view",
            "item_id": f"item-{(number + i) % 13}",
            "ts": now - 60_000 + number * 100 + i,
            "event_id": f"b{number}-{i}",
        }
        for i in range(n)
    ]


async def test_a_killed_broker_answers_503_with_retry_after_and_loses_no_accepted_event(
    own_kafka: Settings, fake_engine: object, serve_app: ServeFactory
) -> None:
    settings = own_kafka
    batches = [batch(20, number) for number in range(40)]
    outage: list[float] = []
    statuses: Counter[int] = Counter()

    async with serve_app(settings, engine=fake_engine) as client:

        async def post_until_accepted(events: list[dict[str, Any]]) -> None:
            while True:
                started = time.monotonic()
                response = await client.post("/v1/events", json=events, timeout=60)
                elapsed = time.monotonic() - started
                statuses[response.status_code] += 1
                if response.status_code == 202:
                    assert response.json()["event_ids"] == [e["event_id"] for e in events]
                    return
                assert response.status_code == 503, response.text
                assert elapsed < PRODUCE_TIMEOUT_S + HTTP_MARGIN_S, elapsed
                assert int(response.headers["retry-after"]) >= 1
                assert response.json()["event_ids"] == [e["event_id"] for e in events]
                outage.append(elapsed)
                await asyncio.sleep(0.5)  # sooner than Retry-After: more requests see it

        async def restart_later() -> None:
            await asyncio.sleep(3 * PRODUCE_TIMEOUT_S)
            await asyncio.to_thread(up_kafka, settings, paths(settings), lambda line: None)

        for events in batches[:10]:
            await post_until_accepted(events)
        kill_broker(settings)
        restarting = asyncio.create_task(restart_later())
        for events in batches[10:]:
            await post_until_accepted(events)
        await restarting

    print(f"statuses {dict(statuses)}; 503 after {[round(s, 2) for s in outage]} s")  # noqa: T201
    assert statuses[503] >= 1  # the outage was seen
    records = await read_topic(settings)
    ids = Counter(parse_event(value).event_id for _, value in records)
    accepted = [e for events in batches for e in events]
    assert set(ids) == {e["event_id"] for e in accepted}
    print(f"{len(records)} records for {len(accepted)} events")  # noqa: T201
    # Counted once, however often each is in the topic: the worker's replay dedupes by id.
    once = Profiler().replay(parse_event(json.dumps(e)) for e in accepted)
    replayed = Profiler().replay(parse_event(value) for _, value in records)
    assert {u: p.n_events for u, p in replayed.items()} == {u: p.n_events for u, p in once.items()}
