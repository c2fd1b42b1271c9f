"""The profile generations record on a real Redis: one rebuild at a time, one switcher wins,
a cancelled rebuild never goes live, a sweep expires only the retired prefix's profiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from recommender.adapters.codec import generation_prefix, profile_key
from recommender.adapters.generation_store import GenerationStore
from recommender.adapters.redis_store import connect
from recommender.core.errors import ModelError
from recommender.core.generations import Retired
from recommender.core.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(isolated: Settings) -> AsyncIterator[aioredis.Redis]:
    client = connect(isolated.redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{isolated.redis_prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def store_of(client: aioredis.Redis, settings: Settings) -> GenerationStore:
    return GenerationStore(client, settings.redis_prefix, settings.consumer_group)


async def test_one_rebuild_at_a_time_and_exactly_one_switcher_wins(
    client: aioredis.Redis, isolated: Settings
) -> None:
    store = store_of(client, isolated)
    state = await store.state()
    assert state.live.original and state.live.prefix == isolated.redis_prefix
    assert state.rebuild is None

    rebuild = await store.start_rebuild("v2", now=1_800_000_000)
    assert rebuild.name == "v2.1800000000"
    assert rebuild.group == f"{isolated.consumer_group}.v2.1800000000"
    assert rebuild.prefix == generation_prefix(isolated.redis_prefix, rebuild.name)
    with pytest.raises(ModelError, match="already running"):
        await store.start_rebuild("v3")
    assert (await store.state()).rebuild == rebuild

    # Two workers of the rebuild see it caught up at once: one switch, one None.
    results = await asyncio.gather(
        store.switch(rebuild, ttl_s=60), store_of(client, isolated).switch(rebuild, ttl_s=60)
    )
    olds = [r for r in results if r is not None]
    assert len(olds) == 1 and olds[0].original
    state = await store.state()
    assert state.live.name == rebuild.name and state.live.switched is not None
    assert state.rebuild is None and state.progress is None
    assert [r.prefix for r in state.retired] == [isolated.redis_prefix]
    assert await store.live() == state.live
    with pytest.raises(ModelError, match="already has live profiles"):
        await store.start_rebuild("v2")
    assert await store.switch(rebuild, ttl_s=60) is None  # nothing left to switch


async def test_a_cancelled_rebuild_never_goes_live_and_its_profiles_retire(
    client: aioredis.Redis, isolated: Settings
) -> None:
    store = store_of(client, isolated)
    rebuild = await store.start_rebuild("v2")
    assert await store.cancel_rebuild(ttl_s=30) == rebuild
    assert await store.switch(rebuild, ttl_s=60) is None
    state = await store.state()
    assert state.live.original and state.rebuild is None
    assert [r.prefix for r in state.retired] == [rebuild.prefix]
    assert await store.cancel_rebuild(ttl_s=30) is None
    again = await store.start_rebuild("v2", now=time.time() + 5)
    assert again.name != rebuild.name and again.prefix != rebuild.prefix  # a fresh start


async def test_a_sweep_expires_only_the_retired_prefix_profiles(
    client: aioredis.Redis, isolated: Settings
) -> None:
    store = store_of(client, isolated)
    base = isolated.redis_prefix
    newer = generation_prefix(base, "v2.1")
    day_ms = 86_400_000
    for i in range(2500):  # more than one SCAN page and one pipeline
        await client.set(profile_key(base, f"u{i}"), "x", px=day_ms)
    await client.set(profile_key(newer, "u1"), "x", px=day_ms)
    await client.set(profile_key(base, "soon"), "x", px=2000)  # already expiring sooner
    await client.set(f"{base}agg:0", "x")  # not a profile: untouched
    now = time.time()
    retired = Retired(base, now + 60, now)
    assert await store.sweep(retired, now) == 2500  # 'soon' keeps its shorter TTL
    assert 0 < await client.pttl(profile_key(base, "u7")) <= 60_000
    assert await client.pttl(profile_key(base, "soon")) <= 2000
    assert await client.pttl(profile_key(newer, "u1")) > 60_000
    assert await client.pttl(f"{base}agg:0") == -1
    swept = (await store.state()).retired
    assert [r.sweeps for r in swept] == [1]
    assert not swept[0].sweep_due(now + 1, resweep_after_s=10)
    assert swept[0].sweep_due(now + 11, resweep_after_s=10)
    assert await store.sweep(swept[0], now + 61) == 0  # expired: the entry goes
    assert (await store.state()).retired == ()
