"""Topic administration of ``recommender.adapters.kafka`` without a broker: bad input and an
unreachable broker fail with errors that say what to do."""

from __future__ import annotations

import pytest

from recommender.adapters.kafka import ensure_topic
from recommender.adapters.localstack import free_port
from recommender.core.errors import InfraError


def test_ensure_topic_rejects_zero_partitions() -> None:
    with pytest.raises(InfraError, match="at least one partition"):
        ensure_topic(f"127.0.0.1:{free_port()}", "t", 0)


def test_ensure_topic_without_a_broker_says_to_start_it() -> None:
    with pytest.raises(InfraError, match="zmot infra up"):
        ensure_topic(f"127.0.0.1:{free_port()}", "t", 1)
