"""The tests of this folder run on a Redis Cluster of 3 masters that the session starts with
``zmot infra``'s own code (:mod:`recommender.adapters.localstack.redis_cluster`), beside the
stack's Kafka: ``stack`` (and so ``isolated``) here name the cluster, with
``ZMOT_REDIS_CLUSTER=true``.

Ports: ``ZMOT_TEST_REDIS_CLUSTER_PORT`` and the two after it (and each + 10000, the cluster
bus), as ``make test`` sets it; unset, three free ports the OS hands out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from recommender.adapters.localstack import paths, tcp_open
from recommender.adapters.localstack.redis_cluster import (
    down_redis_cluster,
    free_cluster_port,
    up_redis_cluster,
)
from recommender.core.settings import Settings

NODES = 3


def cluster_base_port() -> int:
    """The first node's port: the test env's, or three free ones in a row (buses too)."""
    chosen = os.environ.get("ZMOT_TEST_REDIS_CLUSTER_PORT")
    return int(chosen) if chosen else free_cluster_port(NODES)


@pytest.fixture(scope="session")
def redis_cluster(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of a started 3-master Redis Cluster (stopped at the end of the session)."""
    settings = base_settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{cluster_base_port()}/0",
            "redis_cluster": True,
            "state_dir": tmp_path_factory.mktemp("redis-cluster-state"),
        }
    )
    p = paths(settings)
    messages: list[str] = []
    try:
        up_redis_cluster(settings, p, messages.append, NODES)
        yield settings
    finally:
        down_redis_cluster(p, messages.append)


@pytest.fixture(scope="session")
def stack(base_settings: Settings, redis_cluster: Settings) -> Settings:
    """The running Kafka of the stack and the Redis Cluster of this session."""
    host, port = base_settings.kafka_host_port
    if not tcp_open(host, port, timeout_s=1.0):
        pytest.fail(f"integration test needs Kafka at {host}:{port}: run `make test`")
    return base_settings.model_copy(
        update={"redis_url": redis_cluster.redis_url, "redis_cluster": True}
    )
