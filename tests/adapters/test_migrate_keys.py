"""`zmot migrate-keys` on the stack's single Redis: keys of the first key scheme (no hash tags)
are refused at start-up, renamed once by the command (values and TTLs kept, the stores read
them), and a second run finds nothing; a key whose new name is taken stops the run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from recommender.adapters.codec import profile_to_hash
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.keys import (
    LAYOUT_VERSION,
    counters_key,
    decisions_key,
    layout_key,
    links_key,
    person_key,
    profile_key,
)
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_client import RedisClient, check_layout, client_for, close
from recommender.adapters.redis_store import ProfileStore
from recommender.core.errors import ConfigError
from recommender.core.privacy import person_hash
from recommender.core.settings import Settings
from tests.support.processes import run_zmot, worker_env
from tests.support.profiles import profile_of

pytestmark = pytest.mark.integration


@pytest.fixture
async def old(stack: Settings) -> AsyncIterator[tuple[Settings, RedisClient]]:
    """Settings of a fresh prefix and a client, the prefix holding keys of the first scheme."""
    prefix = f"zmot:mig-{uuid.uuid4().hex[:10]}:"
    settings = stack.model_copy(update={"redis_prefix": prefix, "topic_partitions": 4})
    client = client_for(settings)
    profile = profile_of({"q:tv": 2.0}, at=1.7e9, purchases={"tv-1": 1.7e9})
    fields = profile_to_hash(profile)  # the hash is the same in both schemes: names change
    await client.hset(f"{prefix}profile:anna", mapping=fields)  # type: ignore[arg-type]
    await client.expire(f"{prefix}profile:anna", 3600)
    await client.sadd(f"{prefix}links:anna", "anon-1")
    await client.zadd(f"{prefix}udec:anna", {"d-1": 1.7e9})
    await client.hset(f"{prefix}person:{person_hash('bob')}", "erased_at", "1700000000.0")
    await client.hset(f"{prefix}agg:2", mapping={"_off": "41", "i:O1": "7"})
    await client.set(f"{prefix}dec:d-1", "{}")  # unchanged name
    yield settings, client
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await close(client)


async def test_old_keys_are_refused_then_migrated_once(
    old: tuple[Settings, RedisClient],
) -> None:
    settings, client = old
    with pytest.raises(ConfigError, match="zmot migrate-keys"):
        await check_layout(client, settings)

    env = worker_env(settings)
    dry = run_zmot("migrate-keys", "--dry-run", env=env, timeout_s=60)
    assert dry.returncode == 0, dry.stderr
    assert "5 keys to rename" in dry.stdout
    assert await client.exists(f"{settings.redis_prefix}profile:anna") == 1  # dry: untouched

    done = run_zmot("migrate-keys", env=env, timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert "renamed 5 keys" in done.stdout
    prefix = settings.redis_prefix
    names = [k.decode() async for k in client.scan_iter(match=f"{prefix}*")]
    assert sorted(names) == sorted(
        [
            profile_key(prefix, "anna"),
            links_key(prefix, "anna"),
            decisions_key(prefix, "anna"),
            person_key(prefix, "bob"),
            counters_key(prefix, 2),
            f"{prefix}dec:d-1",
            layout_key(prefix),
        ]
    )
    assert 0 < await client.ttl(profile_key(prefix, "anna")) <= 3600
    anna = await ProfileStore(client, prefix, ttl_s=60).get("anna")
    assert anna is not None and anna.weights == {"q:tv": 2.0} and "tv-1" in anna.purchases
    privacy = PrivacyStore(client, prefix)
    assert await privacy.linked("anna") == ["anon-1"]
    [bob] = await privacy.states(["bob"])
    assert bob.erased_at == 1.7e9
    feedback = FeedbackStore(client, prefix, 4)
    assert (await feedback.offsets([2]))[2] == 41
    assert (await feedback.offer_stats(["O1"]))["O1"].impressions == 7
    assert await client.get(layout_key(prefix)) == LAYOUT_VERSION.encode()
    await check_layout(client, settings)

    again = run_zmot("migrate-keys", env=env, timeout_s=60)
    assert again.returncode == 0 and "renamed 0 keys" in again.stdout


async def test_a_taken_new_name_stops_the_run(old: tuple[Settings, RedisClient]) -> None:
    settings, client = old
    prefix = settings.redis_prefix
    await client.hset(profile_key(prefix, "anna"), "_n", "1")  # a new worker already wrote it
    done = run_zmot("migrate-keys", env=worker_env(settings), timeout_s=60)
    assert done.returncode == 1
    assert "1 keys not renamed" in done.stderr and f"{prefix}profile:anna" in done.stderr
    assert await client.exists(f"{prefix}profile:anna") == 1  # left for the operator
    assert await client.get(layout_key(prefix)) is None
