"""The Redis client of every zmot process: one server, or a Redis Cluster (``ZMOT_REDIS_CLUSTER``).

Stores take a :data:`RedisClient` and use only what both clients do alike: single-key commands,
non-transactional pipelines (the cluster client splits one per node and sends them at once, so
commands keep their order only within one slot: keys that must be written in order share a
hash tag, :mod:`.keys`), SCAN (the cluster client walks every primary) and Lua scripts of one
key through :func:`register_script`. Nothing uses MGET/MSET, MULTI or a script over keys of two
slots.

A start-up :func:`check` fails fast and clearly when Redis cannot be reached, when the mode is
wrong (a cluster node without ``ZMOT_REDIS_CLUSTER=true``, or the reverse), and when the keys
under the prefix follow zmot's older key scheme (``zmot migrate-keys`` renames them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from recommender.adapters.keys import LAYOUT_VERSION, layout_key
from recommender.core.errors import ConfigError
from recommender.core.settings import Settings, redact_url

RedisClient: TypeAlias = "aioredis.Redis | RedisCluster"
"""What the stores are given: a client of one Redis server or of a Redis Cluster."""


def connect(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = 64,
    socket_timeout: float | None = 5.0,
) -> RedisClient:
    """A client of ``url``: one server through a pool that waits for a free connection
    instead of failing, or (``cluster``) redis-py's cluster client started from that node.

    ``socket_timeout`` bounds a call to a Redis that hangs rather than refuses (e.g. a
    stopped process), so callers get an error instead of waiting forever. The cluster client
    keeps one pool per node, which opens connections as needed (redis-py has no waiting pool
    for a cluster), so ``max_connections`` applies to a single server only.
    """
    if cluster:
        db = urlparse(url).path.strip("/")
        if db not in ("", "0"):
            raise ConfigError(
                f"a Redis Cluster has only database 0, ZMOT_REDIS_URL names {db!r}: "
                f"{redact_url(url)}"
            )
        return RedisCluster.from_url(url, socket_connect_timeout=5, socket_timeout=socket_timeout)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=5,
        socket_timeout=socket_timeout,
    )
    return aioredis.Redis(connection_pool=pool)


def client_for(settings: Settings, **options: Any) -> RedisClient:
    """:func:`connect` to ``settings``' Redis in ``settings``' mode."""
    return connect(settings.redis_url, cluster=settings.redis_cluster, **options)


async def close(client: RedisClient) -> None:
    """Close the client and its connections (either kind)."""
    if isinstance(client, RedisCluster):
        await client.aclose()
    else:
        await client.aclose(close_connection_pool=True)


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


class Script:
    """A Lua script of ONE key (or keys of one slot), run on a client or queued on a pipeline.

    On one server it is redis-py's script (EVALSHA, loaded on demand). redis-py's cluster
    pipeline refuses EVALSHA, so there it is queued as EVAL with the body: Redis caches the
    compiled script by its SHA1 either way, and no node can answer NOSCRIPT (a failover or a
    restarted node has an empty script cache).
    """

    def __init__(self, client: RedisClient, text: str) -> None:
        self.text = text
        self._script = client.register_script(text)

    async def __call__(self, keys: Sequence[str], args: Sequence[Any], client: Any = None) -> Any:
        if isinstance(client, ClusterPipeline):
            return client.eval(self.text, len(keys), *keys, *args)
        return await self._script(keys=keys, args=args, client=client)


def queue_mget(pipe: Any, keys: Sequence[str]) -> None:
    """Queue one ``MGET`` of ``keys`` on a pipeline of ONE Redis: redis-py's cluster pipeline
    refuses MGET (use :func:`recommender.adapters.redis_store.read_profiles`, which splits it
    per slot on a cluster)."""
    if isinstance(pipe, ClusterPipeline):
        raise ValueError("MGET on a Redis Cluster pipeline: read with read_profiles instead")
    pipe.mget(list(keys))


def register_script(client: RedisClient, text: str) -> Script:
    """``client.register_script`` that also queues on a cluster pipeline (:class:`Script`)."""
    return Script(client, text)


async def check(client: RedisClient, settings: Settings) -> None:
    """Fail fast with a clear message when Redis cannot be reached or is in the other mode."""
    where = redact_url(settings.redis_url)
    try:
        if isinstance(client, RedisCluster):
            await client.initialize()
        await client.ping()
        info = await client.info("cluster") if not isinstance(client, RedisCluster) else {}
    except RedisClusterException as exc:
        raise ConfigError(
            f"no working Redis Cluster at {where} ({exc}); check ZMOT_REDIS_URL, or unset "
            "ZMOT_REDIS_CLUSTER for a single server"
        ) from exc
    except (RedisError, OSError) as exc:
        raise ConfigError(f"Redis is not reachable ({exc}); check ZMOT_REDIS_URL") from exc
    if info.get("cluster_enabled") in (1, "1"):
        raise ConfigError(f"Redis at {where} is a Redis Cluster node: set ZMOT_REDIS_CLUSTER=true")


async def check_layout(client: RedisClient, settings: Settings) -> None:
    """Refuse to run on keys of zmot's older scheme under the prefix; record this scheme
    (``<prefix>layout``) on a Redis that has none of them.

    The old scheme is recognised by the per-partition counter hashes every running worker
    writes (``<prefix>agg:<n>``): reading profiles, fences or erasure records under new names
    while the old ones sit there would rebuild profiles from scratch and forget erasures.
    """
    prefix = settings.redis_prefix
    key = layout_key(prefix)
    stored = await client.get(key)
    if stored is not None:
        version = stored.decode() if isinstance(stored, bytes) else str(stored)
        if version != LAYOUT_VERSION:
            raise ConfigError(
                f"the Redis keys under {prefix!r} follow key scheme {version}, this zmot "
                f"reads scheme {LAYOUT_VERSION}: use the zmot that wrote them"
            )
        return
    old = [f"{prefix}agg:{p}" for p in range(settings.topic_partitions)]
    async with client.pipeline(transaction=False) as pipe:
        for name in old:
            pipe.exists(name)
        found = sum(await pipe.execute())
    if found:
        raise ConfigError(
            f"Redis holds keys of zmot's older key scheme under {prefix!r} (e.g. {old[0]!r}); "
            "stop the worker and the API and run `zmot migrate-keys` once (README, Scaling "
            "out / Redis Cluster)"
        )
    await client.set(key, LAYOUT_VERSION, nx=True)


__all__ = [
    "RedisClient",
    "Script",
    "check",
    "check_layout",
    "client_for",
    "close",
    "connect",
    "is_cluster",
    "register_script",
]
