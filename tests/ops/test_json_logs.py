"""``ZMOT_LOG_FORMAT=json``: the worker logs JSON lines, a dead letter with its Kafka address."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from recommender.core.settings import Settings
from tests.ops.conftest import events, produce, produce_raw

pytestmark = pytest.mark.integration


async def test_worker_json_logs_name_topic_partition_offset_of_a_dead_letter(
    isolated: Settings, worker: Callable[..., Any], caught_up: Callable[..., Awaitable[None]]
) -> None:
    settings = isolated.model_copy(update={"log_format": "json"})
    proc = worker(settings)
    await produce(settings, events(3))
    await produce_raw(settings, [(b"u-9", b"{not json")])
    await caught_up(settings, proc)
    assert proc.stop() == 0
    lines = [json.loads(line) for line in proc.log_text().splitlines() if line.startswith("{")]
    assert lines, proc.log_text()[-2000:]
    letters = [line for line in lines if line["message"].startswith("dead letter")]
    assert len(letters) == 1, letters
    letter = letters[0]
    assert letter["topic"] == settings.events_topic and letter["level"] == "WARNING"
    assert isinstance(letter["partition"], int) and isinstance(letter["offset"], int)
    assert letter["message"].startswith(
        f"dead letter {settings.events_topic}/{letter['partition']}/{letter['offset']}"
    )
