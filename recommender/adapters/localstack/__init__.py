"""Local infrastructure for development, tests and the demo (``zmot infra up|down|status``).

Starts a real single-node Apache Kafka broker (KRaft, broker and controller in one JVM) and
Debian's ``redis-server`` on loopback, each detached from the calling process, and stops them
again. Everything derives from :class:`~recommender.core.settings.Settings` (ports from
``kafka_bootstrap`` / ``redis_url``, files under ``state_dir``), so several stacks (the test
stack, a demo) run side by side on one machine.

Modules: :mod:`.tools` (java, mvn, redis-server), :mod:`.processes` (pid files, stopping,
starting detached, the lock), :mod:`.kafka` (the broker), :mod:`.redis` (redis-server),
:mod:`.net` (ports), :mod:`.paths` and :mod:`.logfiles`. Layout under ``state_dir``::

    kafka/libs/            broker jars, copied once by Maven from infra/kafka/pom.xml
    kafka/libs.sha256      marker: the pom those jars were resolved from (re-resolve on change)
    kafka/server.properties, kafka/log4j2.properties   rendered on every start
    kafka/data/            KRaft metadata and topic logs (formatted once)
    kafka/logs/server.log  the broker's own log (log4j2, size-capped)
    kafka/broker.log       the JVM's stdout/stderr (crashes, bad options)
    kafka/kafka.pid
    redis/                 working dir, redis.pid, redis.log, the append-only file
    redis-cluster/<port>/  one node of `zmot infra up --redis-cluster N`: nodes.conf, pid, log

Why not Docker: the test stack must start on a clean CI machine and on developer machines
without a container runtime; Java 17, Maven and redis-server are plain packages.

Importing this package has no side effects; aiokafka is imported only when Kafka is contacted.
"""

from __future__ import annotations

import shutil
from typing import Any

from recommender.adapters.localstack.kafka import (
    INFRA_KAFKA_DIR,
    KafkaEndpoints,
    down_kafka,
    ensure_kafka_libs,
    kafka_endpoints,
    kafka_healthy,
    kafka_status,
    new_cluster_id,
    render_server_properties,
    up_kafka,
)
from recommender.adapters.localstack.net import free_port, port_in_use, tcp_open
from recommender.adapters.localstack.paths import Paths, paths
from recommender.adapters.localstack.processes import Log, locked, stop_child
from recommender.adapters.localstack.redis import down_redis, redis_ping, redis_status, up_redis
from recommender.adapters.localstack.redis_cluster import (
    down_redis_cluster,
    redis_cluster_status,
    up_redis_cluster,
)
from recommender.adapters.localstack.tools import find_java, parse_java_major
from recommender.core.settings import Settings

__all__ = [
    "INFRA_KAFKA_DIR",
    "KafkaEndpoints",
    "Paths",
    "down",
    "ensure_kafka_libs",
    "find_java",
    "free_port",
    "kafka_endpoints",
    "kafka_healthy",
    "new_cluster_id",
    "parse_java_major",
    "paths",
    "port_in_use",
    "redis_ping",
    "render_server_properties",
    "status",
    "stop_child",
    "tcp_open",
    "up",
    "wipe",
]


def up(settings: Settings, *, log: Log = print, redis_cluster: int = 0) -> None:
    """Start (or find running) the local Kafka broker and Redis of ``settings`` and create
    the events and dead-letter topics. Idempotent. Raises InfraError with what to do when a
    tool is missing, a port belongs to another process, or a service does not come up.

    ``redis_cluster`` > 0 starts a Redis Cluster of that many masters instead of the single
    Redis (:mod:`.redis_cluster`), from ZMOT_REDIS_URL's port on."""
    p = paths(settings)
    with locked(p, log):
        up_kafka(settings, p, log)
        if redis_cluster > 0:
            up_redis_cluster(settings, p, log, redis_cluster)
        else:
            up_redis(settings, p, log)


def down(settings: Settings, *, log: Log = print) -> None:
    """Stop the broker and Redis that ``up`` started for this state dir (SIGTERM, SIGKILL
    after a timeout). Idempotent; data and logs stay in ``state_dir``."""
    p = paths(settings)
    with locked(p, log):
        down_kafka(p, log)
        down_redis(p, log)
        down_redis_cluster(p, log)


def wipe(settings: Settings, *, log: Log = print) -> None:
    """``down``, then delete the broker's data and logs and Redis's dir, for a fresh start.
    The Maven-resolved jars (a cache, not state) and other files in ``state_dir`` stay."""
    p = paths(settings)
    with locked(p, log):
        down_kafka(p, log)
        down_redis(p, log)
        down_redis_cluster(p, log)
        for path in (p.data, p.kafka_logs, p.redis, p.redis_cluster):
            shutil.rmtree(path, ignore_errors=True)
        for path in (p.broker_out, p.server_properties, p.log4j):
            path.unlink(missing_ok=True)
    log(f"wiped Kafka and Redis data under {p.root}")


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    """State of the two services: ``running`` (our process is alive), ``pid``, ``address``,
    ``healthy`` (the address answers a Kafka metadata request / Redis PING, whoever serves
    it), ``managed`` (the address is local, so ``up``/``down`` handle it) and ``log``; and,
    once this state dir started a Redis Cluster, ``redis-cluster`` with its ``nodes``."""
    p = paths(settings)
    out = {"kafka": kafka_status(settings, p), "redis": redis_status(settings, p)}
    cluster = redis_cluster_status(settings, p)
    if cluster is not None:
        if not out["redis"]["running"]:  # the URL names a cluster node, not our single Redis
            del out["redis"]
        out["redis-cluster"] = cluster
    return out
