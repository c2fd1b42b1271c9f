"""What only a Redis Cluster shows: a person's keys on one node and people over all of them,
SCAN over every primary, the start-up checks of the mode, the rate limiter's cluster storage,
the key-scheme guard, and ``zmot infra`` managing the cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from recommender.adapters import localstack
from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.keys import (
    LAYOUT_VERSION,
    decisions_key,
    layout_key,
    links_key,
    person_key,
    profile_key,
)
from recommender.adapters.localstack.redis_cluster import (
    down_redis_cluster,
    free_cluster_port,
    up_redis_cluster,
)
from recommender.adapters.migrate_keys import migrate_keys
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.rate_limit import RateLimiter
from recommender.adapters.redis_client import check, check_layout, client_for, close, connect
from recommender.adapters.redis_store import ProfileStore
from recommender.core.access import Rate
from recommender.core.attribution import DecisionRecord
from recommender.core.errors import ConfigError
from recommender.core.settings import Settings
from tests.support.profiles import profile_of, stored_profiles

pytestmark = pytest.mark.integration

USERS = [f"user-{i}" for i in range(60)]


@pytest.fixture
async def cluster(stack: Settings) -> AsyncIterator[tuple[RedisCluster, str]]:
    client = client_for(stack)
    assert isinstance(client, RedisCluster)
    prefix = f"zmot:cl-{uuid.uuid4().hex[:10]}:"
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await close(client)


def node_of(client: RedisCluster, key: str) -> str:
    node = client.get_node_from_key(key)
    assert node is not None
    return str(node.name)


async def test_a_persons_keys_share_a_node_and_people_spread_over_all(
    cluster: tuple[RedisCluster, str],
) -> None:
    client, prefix = cluster
    profiles = ProfileStore(client, prefix, ttl_s=600)
    privacy = PrivacyStore(client, prefix)
    decisions = DecisionStore(client, prefix, window_s=3600)
    assert await profiles.put_many([(u, None, profile_of({"q:tv": 1.0})) for u in USERS]) == []
    assert await privacy.link("user-0", "anon-0", ttl_s=600)
    await privacy.set_consent("user-1", True)
    record = DecisionRecord("d-1", "user-0", 1.0e9, "exp", "a", {"O1": ("tv-1", 1.0)})
    await decisions.put_many([record])

    nodes = {node_of(client, profile_key(prefix, u)) for u in USERS}
    assert len(nodes) == 3  # 60 people over 3 masters: every node holds some
    for user in USERS:
        keys = [f(prefix, user) for f in (profile_key, links_key, decisions_key, person_key)]
        assert len({node_of(client, k) for k in keys}) == 1
    # SCAN walks every primary: all 60 come back, and the pipelined reads find them
    assert set(await stored_profiles(profiles)) == set(USERS)
    stored, states = await privacy.profiles_with_states(USERS)
    assert all(p is not None for p in stored) and states[1].profiling is True
    by_id, by_user = await decisions.for_events([])
    assert (by_id, by_user) == ({}, {})

    erased = await privacy.erase("user-0", at=2.0e9)
    assert erased.profile and erased.linked == 1
    assert await profiles.get("user-0") is None
    [state] = await privacy.states(["user-0"])
    assert state.erased_at == 2.0e9


async def test_profiles_written_in_chunks_land_on_every_node_behind_their_fences(
    cluster: tuple[RedisCluster, str],
) -> None:
    """More profiles than a write chunk: round trips of at most that many, each of script
    calls within one slot; every profile lands, and each keeps its own fence."""
    client, prefix = cluster
    profiles = ProfileStore(client, prefix, ttl_s=600, write_chunk=7)
    written: list[str] = []
    updates = [(u, None, profile_of({"q:tv": 1.0}, partition=0, offset=i)) for i, u in
               enumerate(USERS)]  # fmt: skip
    assert await profiles.put_many(updates, written) == []
    assert sorted(written) == sorted(USERS)
    assert set(await stored_profiles(profiles)) == set(USERS)
    stale = [USERS[3], USERS[30], USERS[59]]
    again = [(u, (0, 999) if u in stale else (0, i), p) for i, (u, _, p) in enumerate(updates)]
    assert await profiles.put_many(again) == stale


async def test_counters_of_every_partition_are_read_from_every_node(
    cluster: tuple[RedisCluster, str],
) -> None:
    client, prefix = cluster
    feedback = FeedbackStore(client, prefix, partitions=12)
    from recommender.core.feedback import CounterKey, PartitionUpdate

    updates = [
        PartitionUpdate(p, None, 10 + p, {CounterKey("impressions", "O1"): 1}) for p in range(12)
    ]
    assert await feedback.apply(updates) == []
    assert (await feedback.offer_stats(["O1"]))["O1"].impressions == 12
    assert await feedback.offsets(list(range(12))) == {p: 10 + p for p in range(12)}
    assert len({node_of(client, feedback.key(p)) for p in range(12)}) > 1


async def test_start_up_checks_name_the_mode(stack: Settings, base_settings: Settings) -> None:
    as_single = connect(stack.redis_url)  # a cluster node through the one-server client
    with pytest.raises(ConfigError, match="ZMOT_REDIS_CLUSTER=true"):
        await check(as_single, stack.model_copy(update={"redis_cluster": False}))
    await close(as_single)
    as_cluster = connect(base_settings.redis_url, cluster=True)  # the stack's single Redis
    with pytest.raises(ConfigError, match="unset ZMOT_REDIS_CLUSTER"):
        await check(as_cluster, base_settings.model_copy(update={"redis_cluster": True}))
    with pytest.raises(ConfigError, match="only database 0"):
        connect(stack.redis_url.replace("/0", "/2"), cluster=True)
    good = client_for(stack)
    await check(good, stack)
    await close(good)


async def test_key_scheme_guard_and_migration_on_a_cluster(
    stack: Settings, cluster: tuple[RedisCluster, str]
) -> None:
    client, prefix = cluster
    settings = stack.model_copy(update={"redis_prefix": prefix})
    await check_layout(client, settings)
    assert await client.get(layout_key(prefix)) == LAYOUT_VERSION.encode()
    await client.delete(layout_key(prefix))
    await client.hset(f"{prefix}agg:0", "_off", "5")  # a key of the old scheme
    with pytest.raises(ConfigError, match="zmot migrate-keys"):
        await check_layout(client, settings)
    with pytest.raises(ConfigError, match="single Redis"):
        await migrate_keys(client, prefix, log=print)


async def test_rate_limits_count_on_the_cluster(stack: Settings) -> None:
    limiter = RateLimiter(stack.redis_url, f"zmot:rl-{uuid.uuid4().hex[:8]}:", cluster=True)
    rate = Rate(per_second=1.0, burst=3)
    waits = [await limiter.hit("key-a", rate) for _ in range(4)]
    assert waits[:3] == [None, None, None]
    assert waits[3] is not None and 0 < waits[3] <= 3


def test_infra_shows_and_restarts_the_cluster(redis_cluster: Settings) -> None:
    status = localstack.status(redis_cluster)
    info = status["redis-cluster"]
    assert info["healthy"] and info["running"]
    assert [node["cluster_state"] for node in info["nodes"].values()] == ["ok"] * 3
    messages: list[str] = []
    up_redis_cluster(redis_cluster, localstack.paths(redis_cluster), messages.append, 3)
    assert "3 masters" in messages[-1]  # idempotent: found running, still ok


async def test_a_cluster_with_a_password(base_settings: Settings, tmp_path: Path) -> None:
    """``ZMOT_REDIS_URL`` with a password: every node requires it (given on stdin, never on a
    command line), the cluster is created with it, and zmot's client authenticates."""
    port = free_cluster_port(3)
    settings = base_settings.model_copy(
        update={
            "redis_url": f"redis://:s3cret%20pw@127.0.0.1:{port}/0",
            "redis_cluster": True,
            "state_dir": tmp_path,
        }
    )
    p = localstack.paths(settings)
    messages: list[str] = []
    try:
        up_redis_cluster(settings, p, messages.append, 3)
        assert "3 masters" in messages[-1]
        for pid in localstack.status(settings)["redis-cluster"]["pid"].split(","):
            assert "s3cret" not in Path(f"/proc/{pid}/cmdline").read_text()
        client = client_for(settings)
        await check(client, settings)
        await client.set("k{x}", "v")
        assert await client.get("k{x}") == b"v"
        await close(client)
        anonymous = connect(f"redis://127.0.0.1:{port}/0", cluster=True)
        with pytest.raises(ConfigError):
            await check(
                anonymous, settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
            )
    finally:
        down_redis_cluster(p, messages.append)
    assert not localstack.status(settings)["redis-cluster"]["running"]
