"""Helpers for tests that need a running stream worker: a subprocess and Kafka lag checks.

Reusable from any test directory (the root conftest puts the repo on ``sys.path``)::

    from tests.stream.stream_helpers import caught_up, worker  # noqa: F401  (fixtures)

``worker(settings)`` starts ``run_worker`` in a subprocess with the ``ZMOT_*`` environment of
``settings`` (and a free web port), stops it at teardown and prints its log, which pytest shows
when the test fails. ``await caught_up(settings, proc)`` waits until the settings' consumer
group has committed every message of the events topic.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from recommender.adapters.kafka import group_lag as kafka_group_lag
from recommender.core.settings import Settings
from stream.app import datadir_for
from tests.api.support import free_port

ROOT = Path(__file__).resolve().parents[2]
STOP_TIMEOUT_S = 20.0

WORKER_CODE = (
    "from stream.worker import run_worker; from recommender.core.settings import Settings; "
    "run_worker(Settings())"
)


def worker_env(settings: Settings) -> dict[str, str]:
    """This process's environment without its ``ZMOT_*`` variables, plus those of ``settings``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZMOT_")},
        **settings.to_env(),
    }


class WorkerProcess:
    """A stream worker running in a subprocess, its output in a log file."""

    def __init__(self, settings: Settings, log_path: Path, env: dict[str, str]) -> None:
        self.settings = settings
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait for the clean shutdown (kill after ``timeout_s``); the exit code."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"worker did not stop within {timeout_s} s") from None
        self._log.close()
        return self.proc.returncode

    def wait_exit(self, timeout_s: float) -> int:
        """Wait for the worker to exit on its own; the exit code."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout_s} s") from None


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: ``worker(settings, **overrides)`` starts a worker subprocess for this test."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, **overrides: object) -> WorkerProcess:
        settings = settings.model_copy(update={"worker_web_port": free_port(), **overrides})
        log_path = tmp_path / f"worker-{len(started)}.log"
        proc = WorkerProcess(settings, log_path, worker_env(settings))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            proc.stop()
        finally:
            shutil.rmtree(datadir_for(proc.settings), ignore_errors=True)
            # Shown by pytest only when the test failed.
            print(f"----- {proc.log_path.name} (exit {proc.proc.returncode}) -----")  # noqa: T201
            print(proc.log_text()[-20000:])  # noqa: T201


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` (describe, so that no metadata request auto-creates it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def group_lag(settings: Settings) -> dict[int, int]:
    """Messages per partition of the events topic not yet committed by the consumer group."""
    lag = await kafka_group_lag(
        settings.kafka_bootstrap, settings.consumer_group, settings.events_topic
    )
    return {p: end - (committed or 0) for p, (end, committed) in lag.items()}


async def wait_caught_up(
    settings: Settings, proc: WorkerProcess | None = None, timeout_s: float = 60.0
) -> None:
    """Return once the group has committed the whole events topic; fail on timeout or crash."""
    deadline = time.monotonic() + timeout_s
    lag: dict[int, int] = {}
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive:
            raise AssertionError(f"worker exited with {proc.proc.returncode} before catching up")
        lag = await group_lag(settings)
        if lag and not any(lag.values()):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"worker not caught up after {timeout_s} s, lag per partition {lag}")


@pytest.fixture
def caught_up() -> Callable[..., Awaitable[None]]:
    """``await caught_up(settings, proc=None, timeout_s=60)``: see :func:`wait_caught_up`."""
    return wait_caught_up
