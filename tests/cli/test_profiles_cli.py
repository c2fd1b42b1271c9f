"""`zmot profiles migrate` rewrites profiles of older workers (hash, format B) compact, and
says how many."""

from __future__ import annotations

import pytest

from recommender.adapters.codec import profile_to_compact, profile_to_hash, profile_to_value
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.profile import Profile
from recommender.core.settings import Settings
from tests.support.processes import run_zmot, worker_env

pytestmark = pytest.mark.integration


async def test_migrate_rewrites_older_profiles_compact(isolated: Settings) -> None:
    client = connect(isolated.redis_url)
    store = ProfileStore(client, isolated.redis_prefix, 3600)
    old = Profile(weights={"q:tv": 1.5}, landmark=1.75e9, last_ts=1.75e9, partition=2, offset=9)
    try:
        await client.hset(store.key("old"), mapping=profile_to_hash(old))
        await client.set(store.key("packed"), profile_to_value(old))
        await store.put_many([("new", None, old)])
        done = run_zmot("profiles", "migrate", env=worker_env(isolated))
        assert done.returncode == 0, done.stderr
        assert "rewrote 2 profile(s)" in done.stdout
        for user in ("old", "packed"):
            assert await client.get(store.key(user)) == profile_to_compact(old, store.vocab)
        again = run_zmot("profiles", "migrate", env=worker_env(isolated))
        assert "rewrote 0 profile(s)" in again.stdout
        bad = run_zmot(
            "profiles",
            "migrate",
            env=worker_env(isolated) | {"ZMOT_REDIS_URL": "redis://127.0.0.1:1/0"},
        )
        assert bad.returncode == 1 and "Redis" in bad.stderr
    finally:
        keys = [k async for k in client.scan_iter(match=f"{isolated.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
