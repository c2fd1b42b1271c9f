"""Topics zmot creates get the configuration asked for (the dead-letter topic's retention)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from recommender.adapters.kafka import ensure_topics
from recommender.core.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_created_topic_has_the_retention_asked_for(
    stack: Settings, unique: Callable[[str], str]
) -> None:
    name = unique("zmot.events.dlq")
    settings = stack.model_copy(update={"dlq_retention_days": 2.5})
    configs = {name: {"retention.ms": str(settings.dlq_retention_ms)}}
    assert await ensure_topics(stack.kafka_bootstrap, {name: 1}, configs=configs) == {name: 1}
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        await admin.close()
    [resource] = response.to_object()["resources"]
    values = {c["config_names"]: c["config_value"] for c in resource["config_entries"]}
    assert values["retention.ms"] == str(int(2.5 * 86_400_000))
