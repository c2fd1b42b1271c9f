"""Blue/green profiles for an incompatible model, end to end: broker, Redis, worker processes,
an API process and the `zmot` command.

A live worker builds profiles for v1; v2 has another half-life, so `zmot model activate v2`
refuses a hot swap and `--rebuild` starts a rebuild. A `zmot worker --rebuild` process
rebuilds profiles v2's way under a new prefix with a new consumer group while events keep
arriving; once caught up it becomes live, the registry points at v2, the API serves v2 from
the new profiles, the old worker restarts into the new generation, the old profiles expire,
and the new profiles are exactly the offline replay of every event with v2's math.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from recommender.adapters.generation_store import GenerationStore
from recommender.adapters.keys import scan_pattern
from recommender.adapters.localstack import free_port
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.events import parse_event
from recommender.core.generations import GenerationState
from recommender.core.registry import Registry
from recommender.core.settings import Settings
from stream.worker import build_profiler
from tests.api.support import two_generations, write_model
from tests.stream.test_stream_worker import (
    Message,
    assert_profile_equal,
    drop_prefix,
    produce,
)
from tests.support.processes import WorkerProcess, run_zmot, running_api, worker_env
from tests.support.profiles import stored_profiles

pytestmark = pytest.mark.integration

T0 = int(time.time() * 1000) - 6 * 3_600_000


def events(
    first_id: int, n: int, users: int, seed: int
) -> tuple[list[dict[str, Any]], list[Message]]:
    """``n`` events of ``users`` people with ids from ``first_id`` (unique across batches)."""
    rng = random.Random(seed)
    kinds = ["page_view"] * 4 + ["search"] * 2 + ["add_to_cart"]
    out, messages = [], []
    for i in range(first_id, first_id + n):
        user = f"user-{rng.randrange(users)}"
        kind = rng.choice(kinds)
        event: dict[str, Any] = {
            "user_id": user,
            "type": kind,
            "event_id": f"e{i}",
            "ts": T0 + i * 2000,
        }
        if kind == "search":
            event["query"] = rng.choice(["tv repair", "fernseher", "boots"])
        else:
            event["item_id"] = rng.choice(["tv-1", "tv-2", "boots-1", "mount-1"])
        out.append(event)
        messages.append((user.encode(), json.dumps(event).encode(), None))
    return out, messages


async def record(settings: Settings) -> GenerationState:
    client = connect(settings.redis_url)
    try:
        store = GenerationStore(client, settings.redis_prefix, settings.consumer_group)
        return await store.state()
    finally:
        await client.aclose()


async def profiles_under(settings: Settings, prefix: str) -> dict[str, Any]:
    client = connect(settings.redis_url)
    try:
        return await stored_profiles(ProfileStore(client, prefix, ttl_s=600))
    finally:
        await client.aclose()


async def keys_under(settings: Settings, prefix: str) -> list[bytes]:
    client = connect(settings.redis_url)
    try:
        pattern = scan_pattern(prefix, "profile")
        return [k async for k in client.scan_iter(match=pattern, count=1000)]
    finally:
        await client.aclose()


async def eventually(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    """Poll ``check`` until true; fail naming ``what`` (a wait, not a timing claim)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s} s")


@pytest.fixture
async def stack(isolated: Settings, tmp_path: Path) -> AsyncIterator[tuple[Settings, Registry]]:
    model_dir, catalog_path = write_model(tmp_path)
    registry = two_generations(model_dir, tmp_path / "registry")
    settings = isolated.model_copy(
        update={
            "model_dir": registry.root,
            "catalog_path": catalog_path,
            "api_port": free_port(),
            "model_poll_s": 0.3,
            "rebuild_max_lag": 0,
            "retired_profiles_ttl_s": 3.0,
        }
    )
    yield settings, registry
    await drop_prefix(isolated)


async def test_an_incompatible_model_is_served_from_profiles_rebuilt_its_way(
    stack: tuple[Settings, Registry],
    tmp_path: Path,
    worker: Callable[..., WorkerProcess],
    caught_up: Callable[..., Awaitable[None]],
) -> None:
    settings, registry = stack
    first, first_messages = events(0, 3000, users=40, seed=1)
    await produce(settings, first_messages)
    live = worker(settings)
    await caught_up(settings, live, timeout_s=90)
    original = await profiles_under(settings, settings.redis_prefix)
    assert len(original) == 40

    with running_api(settings, tmp_path / "api.log") as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:

            async def serves(version: str) -> bool:
                r = await client.get("/v1/next-best-offer", params={"user_id": "user-1"})
                return r.status_code == 200 and r.json()["model_version"] == version

            assert await serves("v1")

            # Not compatible: refused as a hot swap, with the way out named.
            env = worker_env(settings)
            refused = run_zmot("model", "activate", "v2", env=env)
            assert refused.returncode != 0
            assert "profile_params.half_life_s" in refused.stdout
            assert "--rebuild" in refused.stdout + refused.stderr
            started = run_zmot("model", "activate", "v2", "--rebuild", env=env)
            assert started.returncode == 0, started.stdout + started.stderr
            assert "rebuild started" in started.stdout and "zmot worker --rebuild" in started.stdout
            again = run_zmot("model", "activate", "v2", "--rebuild", env=env)
            assert again.returncode != 0 and "already running" in again.stdout + again.stderr
            assert registry.current() == "v1"
            state = await record(settings)
            assert state.live.original and state.rebuild is not None
            rebuild = state.rebuild
            assert rebuild.version == "v2" and rebuild.prefix != settings.redis_prefix

            # The rebuild runs while events keep arriving and v1 keeps serving.
            rebuilder = worker(settings, rebuild=True)
            second, second_messages = events(3000, 600, users=50, seed=2)
            for chunk in range(0, len(second_messages), 100):
                await produce(settings, second_messages[chunk : chunk + 100])
            during = await record(settings)
            assert during.rebuild == rebuild, "the rebuild went live before the test's events"
            assert await serves("v1")
            status = run_zmot("model", "rebuild", "--json", env=env)
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["rebuild"]["version"] == "v2"

            async def ops_shows_rebuild() -> bool:
                profiles = (await client.get("/ops/summary")).json()["profiles"]
                return profiles is not None and (profiles["rebuild"] or {}).get("version") == "v2"

            await eventually("the ops summary shows the rebuild", ops_shows_rebuild, 10)

            async def switched() -> bool:
                return (await record(settings)).live.name == rebuild.name

            await eventually("rebuild became live", switched, timeout_s=120)
            assert registry.current() == "v2"
            shown_model = run_zmot("model", "show", "v2", env=env)
            assert json.loads(shown_model.stdout)["profiles"]["role"] == "live"
            await eventually("API serves v2", lambda: serves("v2"), timeout_s=30)
            ready = (await client.get("/readyz")).json()
            assert ready["model_version"] == "v2" and "model_refused" not in ready
            assert ready["profiles"]["live"]["name"] == rebuild.name
            assert ready["profiles"]["rebuild"] is None

            # Events after the switch land in the new profiles (same group, nothing handed over).
            third, third_messages = events(3600, 300, users=50, seed=3)
            await produce(settings, third_messages)
            new_group = settings.model_copy(update={"consumer_group": rebuild.group})
            await caught_up(new_group, rebuilder, timeout_s=90)

            # Old profiles expire; the old worker restarted into the new generation.
            async def old_gone() -> bool:
                return not await keys_under(settings, settings.redis_prefix)

            await eventually("old profiles expired", old_gone, timeout_s=60)
            assert live.alive and "restarting" in live.log_text()
            assert f"generation {rebuild.name}" in live.log_text().split("restarting")[-1]

            # Nothing lost: the new profiles are every event replayed with v2's math.
            everything = first + second + third
            profiler = build_profiler(
                settings.model_copy(update={"model_dir": registry.path_of("v2")})
            )
            want = profiler.replay(parse_event(json.dumps(e)) for e in everything)
            rebuilt = await profiles_under(settings, rebuild.prefix)
            assert set(rebuilt) == set(want)
            for user, profile in rebuilt.items():
                assert_profile_equal(profile, want[user], user)
                assert profile.n_events == sum(e["user_id"] == user for e in everything)

            # The API reads them: the old keys are gone, the profile is there, v2's.
            shown = await client.get("/v1/users/user-7/profile")
            assert shown.status_code == 200, shown.text
            assert shown.json()["events_applied"] == want["user-7"].n_events
