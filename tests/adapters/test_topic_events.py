"""Reading the history back from the events topic (what `zmot train --from-kafka` trains on):
everything up to the end offsets, or from a time; bad messages reported, not fatal."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from recommender.adapters.kafka import EventProducer, read_topic_events
from recommender.core.events import validate_event
from recommender.core.settings import Settings

pytestmark = pytest.mark.integration


def view(user: str, item: str, ts_ms: int | None = None) -> dict[str, object]:
    event: dict[str, object] = {"user_id": user, "type": "page_view", "item_id": item}
    if ts_ms is not None:
        event["ts"] = ts_ms
    return event


async def test_reads_all_or_since_a_time_with_record_time_as_default_ts(
    isolated: Settings,
) -> None:
    early = [validate_event(view(f"u{i}", "tv-1", 1_750_000_000_000 + i)) for i in range(30)]
    late = [validate_event(view(f"u{i}", "boots-1")) for i in range(20)]  # no ts: record time
    async with EventProducer(isolated.kafka_bootstrap, isolated.events_topic) as producer:
        await producer.send_many(early)
        raw = AIOKafkaProducer(bootstrap_servers=isolated.kafka_bootstrap)
        await raw.start()
        try:
            await raw.send_and_wait(isolated.events_topic, b"{not json", key=b"u1")
        finally:
            await raw.stop()
        await asyncio.sleep(0.05)
        cut = time.time()
        await asyncio.sleep(0.05)
        await producer.send_many(late)
    done = time.time()

    events, bad = await read_topic_events(isolated.kafka_bootstrap, isolated.events_topic)
    assert sorted(e.model_dump_json() for e in events if e.item_id == "tv-1") == sorted(
        e.model_dump_json() for e in early
    )
    assert len(events) == 50 and len(bad) == 1 and "not JSON" in bad[0]
    assert all(cut <= (e.ts or 0) <= done for e in events if e.item_id == "boots-1")

    recent, bad_recent = await read_topic_events(
        isolated.kafka_bootstrap, isolated.events_topic, since=cut
    )
    assert sorted(e.user_id for e in recent) == sorted(e.user_id for e in late)
    assert {e.item_id for e in recent} == {"boots-1"} and bad_recent == []
    nothing, _ = await read_topic_events(
        isolated.kafka_bootstrap, isolated.events_topic, since=done + 60
    )
    assert nothing == []
