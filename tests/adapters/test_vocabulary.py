"""The shared feature vocabulary on a real Redis: one id per name whatever the writers,
readers that meet new ids, the limit, erasure, and a lost vocabulary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from recommender.adapters.keys import vocab_keys
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.adapters.vocabulary import UnknownVocabularyIdError, Vocabulary
from recommender.core.profile import Profile
from recommender.core.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
T = 1_750_000_000.0


@pytest.fixture
async def prefix(client: aioredis.Redis) -> AsyncIterator[str]:
    name = f"zmot:vocab-{uuid.uuid4().hex[:10]}:"
    yield name
    keys = [k async for k in client.scan_iter(match=f"{name}*")]
    if keys:
        await client.delete(*keys)


async def vocabulary_in_redis(client: aioredis.Redis, prefix: str) -> dict[str, int]:
    names_key, ids_key = vocab_keys(prefix)
    names = {k.decode(): int(v) for k, v in (await client.hgetall(names_key)).items()}
    ids = {int(k): v.decode() for k, v in (await client.hgetall(ids_key)).items()}
    assert {i: n for n, i in names.items()} == ids  # the two hashes agree
    assert sorted(ids) == list(range(1, len(ids) + 1))  # dense, from 1, none given twice
    return names


WRITER = textwrap.dedent(
    """
    import asyncio, json, random, sys
    from recommender.adapters.redis_store import ProfileStore, connect
    from recommender.core.profile import Profile

    async def main(url, prefix, seed):
        client = connect(url)
        store = ProfileStore(client, prefix, ttl_s=3600)
        rng = random.Random(seed)
        for batch in range(40):
            updates = []
            for u in range(5):
                names = rng.sample([f"item:SKU-{i}" for i in range(300)], 20)
                profile = Profile(weights={n: 1.0 for n in names}, landmark=1.0, last_ts=1.0)
                updates.append((f"w{seed}-{batch}-{u}", None, profile))
            assert await store.put_many(updates) == []
        print(json.dumps(store.vocab.ids))
        await client.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_two_worker_processes_give_each_new_name_one_id(
    client: aioredis.Redis, prefix: str, stack: Settings
) -> None:
    """Two processes meeting the same 300 new names in different orders at the same time:
    every name has one id, both caches agree with Redis, and each reads the other's
    profiles."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, stack.redis_url, prefix, str(seed)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        for seed in (1, 2)
    ]
    seen = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        seen.append(json.loads(out))
    stored = await vocabulary_in_redis(client, prefix)
    assert len(stored) == 300
    for ids in seen:
        assert ids.items() <= stored.items()
    reader = ProfileStore(client, prefix, ttl_s=3600)  # a fresh process's view: empty cache
    users = await reader.user_ids()
    assert len(users) == 400
    profiles = await reader.get_many(users)
    assert all(p is not None and len(p.weights) == 20 for p in profiles)
    assert len(reader.vocab.names) == 300  # learnt on the way, one HMGET


async def test_concurrent_assignments_on_two_connections_agree(
    client: aioredis.Redis, prefix: str, stack: Settings
) -> None:
    other = connect(stack.redis_url)
    try:
        a, b = Vocabulary(client, prefix), Vocabulary(other, prefix)
        names = [f"cat:c{i}" for i in range(500)]
        await asyncio.gather(
            *(a.assign(names[i : i + 7]) for i in range(0, 500, 7)),
            *(b.assign(names[::-1][i : i + 11]) for i in range(0, 500, 11)),
        )
        assert a.ids == b.ids == await vocabulary_in_redis(client, prefix)
    finally:
        await other.aclose()


async def test_a_full_vocabulary_keeps_new_names_inline(
    client: aioredis.Redis, prefix: str
) -> None:
    store = ProfileStore(client, prefix, ttl_s=3600)
    store.vocab.limit = 3
    profile = Profile(
        weights={f"brand:b{i}": float(i + 1) for i in range(6)}, landmark=T, last_ts=T
    )
    assert await store.put_many([("u", None, profile)]) == []
    assert store.vocab.full and len(await vocabulary_in_redis(client, prefix)) == 3
    fresh = ProfileStore(connect_like(client), prefix, ttl_s=3600)
    try:
        assert await fresh.get("u") == profile
    finally:
        await fresh.client.aclose()


def connect_like(client: aioredis.Redis) -> aioredis.Redis:
    kwargs = client.connection_pool.connection_kwargs
    return aioredis.Redis(host=kwargs["host"], port=kwargs["port"], db=kwargs.get("db", 0))


async def test_erasure_leaves_no_search_text_of_the_person(
    client: aioredis.Redis, prefix: str
) -> None:
    """The person's search words were only ever in their own profile: after the erasure no
    key under the prefix holds them, while the vocabulary keeps the catalog's names."""
    store = ProfileStore(client, prefix, ttl_s=3600, shared_text=frozenset({"q:fernseher"}))
    profile = Profile(
        weights={
            "q:fernseher": 1.0,  # a catalog word: shareable
            "q:zyxwvutsrq": 1.0,  # the person's own text
            "qp:zyxwv": 0.5,
            "item:SKU-9": 1.0,
        },
        touched={"SKU-9": T},
        landmark=T,
        last_ts=T,
    )
    assert await store.put_many([("anna", None, profile)]) == []
    assert await store.get("anna") == profile
    vocab = await vocabulary_in_redis(client, prefix)
    assert set(vocab) == {"q:fernseher", "item:SKU-9"}
    await PrivacyStore(client, prefix).erase("anna", T + 1)
    assert await store.get("anna") is None
    for key in [k async for k in client.scan_iter(match=f"{prefix}*")]:
        kind = await client.type(key)
        held = (
            b"".join(k + v for k, v in (await client.hgetall(key)).items())
            if kind == b"hash"
            else (await client.get(key) or b"")
        )
        assert b"zyxwv" not in held and b"anna" not in key + held


async def test_a_lost_vocabulary_is_a_clear_error(client: aioredis.Redis, prefix: str) -> None:
    store = ProfileStore(client, prefix, ttl_s=3600)
    profile = Profile(weights={"cat:tv": 1.0}, landmark=T, last_ts=T)
    assert await store.put_many([("u", None, profile)]) == []
    await client.delete(*vocab_keys(prefix))
    reader = ProfileStore(connect_like(client), prefix, ttl_s=3600)
    try:
        with pytest.raises(UnknownVocabularyIdError, match="evicted"):
            await reader.get("u")
    finally:
        await reader.client.aclose()
