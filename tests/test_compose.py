"""docker-compose.yml is valid and describes the same stack the local tooling runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from recommender.adapters.localstack.redis import REDIS_PERSISTENCE
from recommender.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_services_have_images_or_builds_and_healthchecks() -> None:
    services = compose()["services"]
    assert {"kafka", "redis", "worker", "api"} <= set(services)
    for name in ("kafka", "redis", "worker", "api"):
        service = services[name]
        assert "image" in service or "build" in service, name
        assert service["healthcheck"]["test"], name
    for name in ("worker", "api"):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        for dep, cond in services[name]["depends_on"].items():
            assert dep in services and cond["condition"].startswith("service_")


def test_topics_and_settings_match_the_defaults() -> None:
    # the defaults as written in Settings, whatever ZMOT_* variables this process has
    defaults = Settings.model_construct()
    services = compose()["services"]
    for name in ("worker", "api"):
        env = services[name]["environment"]
        assert env["ZMOT_EVENTS_TOPIC"] == defaults.events_topic
        assert env["ZMOT_DLQ_TOPIC"] == defaults.dlq_topic
        assert env["ZMOT_CONSUMER_GROUP"] == defaults.consumer_group
        assert Settings(**{k[5:].lower(): v for k, v in env.items()})  # every key is a setting
        assert set(k[5:].lower() for k in env) <= set(Settings.model_fields)
    init = " ".join(services["kafka-init"]["command"])
    assert f"--topic {defaults.events_topic} --partitions {defaults.topic_partitions}" in init
    assert f"--topic {defaults.dlq_topic} " in init
    assert f"--topic {defaults.decisions_topic} --partitions {defaults.topic_partitions}" in init
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_NUM_PARTITIONS"] == str(defaults.topic_partitions)
    assert services["api"]["environment"]["ZMOT_API_PORT"] == str(defaults.api_port)


def test_redis_persists_like_zmot_infra_and_the_worker_restarts() -> None:
    services = compose()["services"]
    command = " ".join(services["redis"]["command"])
    assert " ".join(REDIS_PERSISTENCE) in command
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])
    assert services["worker"]["restart"] == "on-failure"
    assert services["worker"]["environment"]["ZMOT_WORKER_INSTANCE_ID"]
