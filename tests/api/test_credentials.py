"""The whole path with credentials: a Redis with ``requirepass`` and a Kafka broker whose only
client listener is SASL/SCRAM, both started by ``zmot infra up`` for this test; events go in
through the API, the worker builds the profile, the API reads it; no password in any log."""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ResponseError

from api.app import create_app
from api.engine import Engine
from recommender.adapters.kafka import PLAINTEXT, describe_cluster
from recommender.adapters.localstack import free_port
from recommender.adapters.localstack.paths import paths
from recommender.core.settings import Settings
from tests.api.support import serve
from tests.support.processes import run_zmot, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture
def secured(tmp_path: Path, stack: Settings) -> Iterator[tuple[Settings, list[str]]]:
    """A stack of its own with a Redis password and a SCRAM user; (settings, the secrets)."""
    redis_pw, kafka_pw = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    kafka_port = free_port()
    settings = Settings(
        state_dir=tmp_path / "state",
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        redis_url=f"redis://:{redis_pw}@127.0.0.1:{free_port()}/0",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="zmot",
        kafka_sasl_password=kafka_pw,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
        events_topic="zmot.events.secured",
        dlq_topic="zmot.events.dlq.secured",
        consumer_group="zmot-worker-secured",
        topic_partitions=2,
    )
    env = worker_env(settings)
    # The broker's jars are the test stack's (no second Maven download).
    shared = paths(stack).kafka
    own = paths(settings).kafka
    own.mkdir(parents=True)
    (own / "libs").symlink_to((shared / "libs").resolve())
    shutil.copyfile(shared / "libs.sha256", own / "libs.sha256")
    up = run_zmot("infra", "up", env=env, timeout_s=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield settings, [redis_pw, kafka_pw, up.stdout + up.stderr]
    finally:
        down = run_zmot("infra", "down", env=env, timeout_s=120)
        assert down.returncode == 0, down.stdout + down.stderr


async def test_events_to_profile_with_redis_and_kafka_passwords_and_no_password_logged(
    secured: tuple[Settings, list[str]],
    fake_engine: Engine,
    worker: Callable[..., Any],
    caught_up: Callable[..., Awaitable[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, (redis_pw, kafka_pw, infra_output) = secured
    # Without the credentials both refuse.
    plain = aioredis.from_url(settings.redis_url.replace(f":{redis_pw}@", ""))
    with pytest.raises((AuthenticationError, ResponseError)):
        await plain.ping()
    await plain.aclose()
    with pytest.raises(Exception):  # noqa: B017 - any refusal: the broker speaks SASL only
        await describe_cluster(settings.kafka_bootstrap, 3.0, auth=PLAINTEXT)

    proc = worker(settings)
    event = {"user_id": "u-secure", "type": "search", "query": "fernseher reparatur"}
    with caplog.at_level(logging.DEBUG):
        async with serve(create_app(settings, engine=fake_engine)) as client:
            assert (await client.post("/v1/events", json=event)).status_code == 202
            await caught_up(settings, proc, timeout_s=120)
            profile = await client.get("/v1/users/u-secure/profile")
            assert profile.status_code == 200, profile.text
            assert "q:fernseher" in profile.json()["features"]
            summary = (await client.get("/ops/summary")).text
            lag = await client.get("/ops/lag")
            assert lag.status_code == 200, lag.text
    assert proc.stop() == 0
    logs = {
        "api": caplog.text,
        "worker": proc.log_text(),
        "zmot infra": infra_output,
        "ops summary": summary,
        **{
            str(path): path.read_text(errors="replace")
            for path in paths(settings).root.rglob("*.log")
            if path.is_file() and "libs" not in path.parts
        },
    }
    assert "redis://:***@127.0.0.1" in caplog.text  # the ready line, redacted
    for name, text in logs.items():
        assert redis_pw not in text, name
        assert kafka_pw not in text, name
    assert any(name.endswith("server.log") for name in logs)  # the broker's own log
    assert any(name.endswith("redis.log") for name in logs)


def test_the_settings_need_a_user_and_password_for_sasl() -> None:
    with pytest.raises(ValueError, match="ZMOT_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_SSL")
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="u",
        kafka_sasl_password="pw-123",  # type: ignore[arg-type]
    )
    assert "pw-123" not in repr(settings)
    assert settings.to_env()["ZMOT_KAFKA_SASL_PASSWORD"] == "pw-123"
    assert Settings(**{k[5:].lower(): v for k, v in settings.to_env().items()}) == settings
