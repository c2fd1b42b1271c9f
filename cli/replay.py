"""Producing event files into Kafka (``zmot replay`` and the demo)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from tqdm import tqdm

from recommender.adapters.kafka import EventProducer, kafka_auth
from recommender.core.events import Event
from recommender.core.settings import Settings


async def _produce(settings: Settings, events: Sequence[Event], rate: float | None) -> int:
    chunk = 1000 if rate is None else max(1, int(rate // 10))
    started = time.monotonic()
    auth = kafka_auth(settings)
    async with EventProducer(
        settings.kafka_bootstrap, settings.events_topic, auth=auth
    ) as producer:
        with tqdm(total=len(events), unit="ev", desc="replay", file=sys.stderr) as bar:
            for start in range(0, len(events), chunk):
                part = events[start : start + chunk]
                await producer.send_many(part)
                bar.update(len(part))
                if rate is not None:
                    ahead = (start + len(part)) / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
    return len(events)


def produce(settings: Settings, events: Sequence[Event], rate: float | None = None) -> int:
    """Produce ``events`` in order (at ``rate`` events/s if given); returns the count sent."""
    return asyncio.run(_produce(settings, events, rate))
