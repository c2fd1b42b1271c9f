"""The worker's model watch: a compatible activation is taken over (log, gauge), an
incompatible one leaves the profile math alone."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from recommender.adapters.metrics import WorkerMetrics
from recommender.core.profile import ProfileParams
from recommender.core.registry import Registry
from stream.model_watch import WorkerModelWatch
from tests.support.models import tiny


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
