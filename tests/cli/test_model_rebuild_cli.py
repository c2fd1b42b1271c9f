"""`zmot model activate --rebuild` and `zmot model rebuild` as a user runs them (real Redis):
which case applies, the rebuild's record, its progress line, cancelling it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from recommender.adapters.generation_store import GenerationStore
from recommender.adapters.redis_store import connect
from recommender.core.generations import Progress
from recommender.core.profile import ProfileParams
from recommender.core.registry import Registry
from recommender.core.settings import Settings
from tests.support.models import tiny
from tests.support.processes import run_zmot, worker_env

pytestmark = pytest.mark.integration


async def test_activate_says_which_case_applies_and_rebuild_shows_and_cancels(
    isolated: Settings, tmp_path: Path
) -> None:
    reg = Registry(tmp_path / "models")
    reg.register(tiny("v1"))
    reg.register(replace(tiny("v2"), popular=["boots-1", "tv-1"]))
    reg.register(replace(tiny("v3"), profile_params=ProfileParams(half_life_s=60.0)))
    reg.activate("v1")
    env = worker_env(isolated.model_copy(update={"model_dir": reg.root}))

    hot = run_zmot("model", "activate", "v2", "--rebuild", env=env)
    assert hot.returncode == 0, hot.stderr
    assert "compatible" in hot.stdout and "nothing to rebuild" in hot.stdout
    assert "swapped hot" in hot.stdout and reg.current() == "v2"

    started = run_zmot("model", "activate", "v3", "--rebuild", env=env)
    assert started.returncode == 0, started.stderr
    assert "incompatible" in started.stdout and "profile_params.half_life_s" in started.stdout
    assert "rebuild started: generation v3." in started.stdout and reg.current() == "v2"

    client = connect(isolated.redis_url)
    try:
        store = GenerationStore(client, isolated.redis_prefix, isolated.consumer_group)
        state = await store.state()
        assert state.rebuild is not None and state.rebuild.version == "v3"
        status = run_zmot("model", "rebuild", env=env)
        assert "not measured yet (is a `zmot worker --rebuild` running?)" in status.stdout
        await store.record_progress(state.rebuild, Progress(lag=250, end=1000, checked=1.0))
        status = run_zmot("model", "rebuild", env=env)
        assert "lag 250 of 1000 messages (75.0% done), switches at lag <= 500" in status.stdout
        shown = json.loads(run_zmot("model", "show", "v3", env=env).stdout)
        assert shown["profiles"]["role"] == "rebuild" and shown["profiles"]["lag"] == 250

        cancelled = run_zmot("model", "rebuild", "--cancel", "--json", env=env)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"cancelled: generation {state.rebuild.name}" in cancelled.stderr
        summary = json.loads(cancelled.stdout)
        assert summary["rebuild"] is None
        assert [r["prefix"] for r in summary["retired"]] == [state.rebuild.prefix]
        assert json.loads(run_zmot("model", "show", "v3", env=env).stdout)["profiles"] is None
    finally:
        keys = [k async for k in client.scan_iter(match=f"{isolated.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
