"""Fixtures of the ops tests: a real API process, the ``zmot lag`` command, event traffic.

``api_server(settings)`` starts ``python -m api.server`` on a free loopback port with the
hand-made model of the API tests, waits until it is ready and stops it at teardown (its output
is printed then, which pytest shows when the test failed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from recommender.adapters.kafka import EventProducer
from recommender.adapters.localstack import free_port
from recommender.core.events import Event
from recommender.core.settings import Settings
from tests.api.support import write_model
from tests.support.processes import ApiProcess, run_zmot, worker_env


def zmot_lag(settings: Settings) -> dict[str, Any]:
    """What ``zmot lag --json`` prints for ``settings``, parsed."""
    done = run_zmot("lag", "--json", env=worker_env(settings), timeout_s=60)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def events(n: int, *, users: int = 50) -> list[Event]:
    """``n`` valid events of ``users`` users, timed now (searches and page views)."""
    now = int(time.time() * 1000)  # the contract's epoch milliseconds
    out = []
    for i in range(n):
        user = f"u-{i % users}"
        if i % 3 == 0:
            out.append(Event(user_id=user, type="search", query="tv repair", ts=now))
        else:
            out.append(Event(user_id=user, type="page_view", item_id=f"tv-{i % 2 + 1}", ts=now))
    return out


async def produce(settings: Settings, batch: list[Event]) -> None:
    async with EventProducer(settings.kafka_bootstrap, settings.events_topic) as producer:
        for start in range(0, len(batch), 1000):
            await producer.send_many(batch[start : start + 1000])


async def produce_raw(settings: Settings, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Produce bytes as they are (malformed input the API would refuse)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(settings.events_topic, value, key=key)
    finally:
        await producer.stop()


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[Callable[..., ApiProcess]]:
    """Factory: ``api_server(settings, **overrides)`` runs a ready API with the test model."""
    model_dir, catalog_path = write_model(tmp_path)
    started: list[ApiProcess] = []

    def start(settings: Settings, **overrides: object) -> ApiProcess:
        update = {
            "model_dir": model_dir,
            "catalog_path": catalog_path,
            "api_port": free_port(),
            **overrides,
        }
        proc = ApiProcess(settings.model_copy(update=update), tmp_path / f"api-{len(started)}.log")
        started.append(proc)
        proc.wait_ready()
        return proc

    yield start
    for proc in started:
        proc.stop()
        print(f"----- {proc.log_path.name} -----")  # noqa: T201  (shown when the test failed)
        print(proc.log_path.read_text(errors="replace")[-20000:])  # noqa: T201


@pytest.fixture
def no_proxy_env() -> Iterator[None]:
    """httpx must not send loopback requests through a proxy from the environment."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.lower().endswith("_proxy")}
    yield
    os.environ.update(saved)
