"""The worker's model watch: a compatible activation is taken over (log, gauge), an
incompatible one leaves the profile math alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recommender.adapters.metrics import WorkerMetrics
from recommender.core.profile import ProfileParams
from recommender.core.registry import Registry
from recommender.core.settings import Settings
from stream.model_watch import WorkerModelWatch
from tests.support.models import tiny
from tests.support.processes import WorkerProcess


def gauge(metrics: WorkerMetrics) -> dict[str, float]:
    return {s.labels["version"]: s.value for m in metrics.model_info.collect() for s in m.samples}


def test_worker_follows_compatible_versions_and_keeps_its_math_otherwise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry(tmp_path)
    reg.register(tiny("v1"))
    reg.register(replace(tiny("v2"), popular=["boots-1", "tv-1"]))
    reg.register(replace(tiny("v3"), profile_params=ProfileParams(half_life_s=60.0)))
    reg.activate("v1")
    metrics = WorkerMetrics()
    watch = WorkerModelWatch(tmp_path, metrics)
    assert watch.check() is None and gauge(metrics) == {"v1": 1.0}

    reg.activate("v2")
    taken = watch.check()
    assert taken is not None and taken.version == "v2"
    assert watch.version == "v2" and gauge(metrics) == {"v2": 1.0}

    reg.activate("v3")
    with caplog.at_level(logging.ERROR, logger="stream.model_watch"):
        assert watch.check() is None
    assert watch.version == "v2" and watch.refused == "v3"
    assert "keeps building profiles for v2" in caplog.text
    assert "profile_params.half_life_s" in caplog.text
    assert watch.check() is None  # asked once per activation, not every tick


@pytest.mark.integration
async def test_a_running_worker_takes_over_an_activated_version(
    isolated: Settings,
    tmp_path: Path,
    worker: Callable[..., WorkerProcess],
) -> None:
    reg = Registry(tmp_path / "models")
    reg.register(tiny("v1"))
    reg.register(replace(tiny("v2"), popular=["boots-1", "tv-1"]))
    reg.activate("v1")
    proc = worker(isolated, model_dir=reg.root, model_poll_s=0.2)
    url = f"http://127.0.0.1:{proc.settings.worker_web_port}/metrics"

    async def versions() -> set[str]:
        async with httpx.AsyncClient(timeout=10) as client:
            try:
                text = (await client.get(url)).text
            except httpx.TransportError:  # still starting
                return set()
        return {
            s.labels["version"]
            for family in text_string_to_metric_families(text)
            if family.name == "zmot_worker_model_info"
            for s in family.samples
            if s.value == 1
        }

    async def wait_for(version: str) -> None:
        for _ in range(600):  # polls, not a timing claim: fails only if it never happens
            if await versions() == {version}:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"worker still reports {await versions()}, not {version}")

    await wait_for("v1")
    reg.activate("v2")
    await wait_for("v2")
    assert "model v2 active (was v1): same profile math" in proc.log_text()
