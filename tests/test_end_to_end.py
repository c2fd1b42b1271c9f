"""The whole path on the real broker and Redis: Kafka -> worker -> Redis -> API -> offer.

A model trained on the demo shop is served; new users' searches are produced to Kafka; the
worker turns them into profiles; the API's next best offer for a TV-repair searcher is a TV
(not an accessory or a repair service) and a hiking searcher's is an outdoor item.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.app import create_app
from recommender.adapters.kafka import EventProducer
from recommender.core.events import Event
from recommender.core.settings import Settings
from tests.api.support import serve

pytestmark = pytest.mark.integration

DEADLINE_S = 10.0
CASES = [
    ("fernseher reparatur", "electronics.tv"),
    ("tv repair", "electronics.tv"),
    ("riparazione tv", "electronics.tv"),
    ("wanderschuhe", "outdoor."),
]


async def poll_offer(client: httpx.AsyncClient, user: str) -> dict[str, Any]:
    """The first personalised answer for ``user``, polling until the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        response = await client.get("/v1/next-best-offer", params={"user_id": user, "k": 3})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if not body["fallback"]:
            return body
        assert time.monotonic() < deadline, f"{user}: still a fallback after {DEADLINE_S} s"
        await asyncio.sleep(0.1)


async def test_searches_through_kafka_become_the_right_offers(
    isolated: Settings,
    demo_shop: Any,
    worker: Callable[..., Any],
    caught_up: Any,
) -> None:
    settings = demo_shop.serving(isolated)
    proc = worker(settings)
    users = {f"e2e-{uuid.uuid4().hex[:8]}": case for case in CASES}
    async with EventProducer(settings.kafka_bootstrap, settings.events_topic) as producer:
        # the worker is up once it has applied a first event (its start-up is not timed)
        await producer.send_many([Event(user_id="warm-up", type="page_view", item_id="x")])
        await caught_up(settings, proc, timeout_s=90)
        async with serve(create_app(settings)) as client:
            unknown = await client.get("/v1/next-best-offer", params={"user_id": "nobody"})
            assert unknown.json()["fallback"] is True
            await producer.send_many(
                [Event(user_id=u, type="search", query=q) for u, (q, _) in users.items()]
            )
            for user, (query, category) in users.items():
                body = await poll_offer(client, user)
                top = body["offers"][0]
                assert top["category"].startswith(category), (query, body["offers"])
                assert body["model_version"] == demo_shop.model.version
                assert any("searched" in r for r in top["reasons"]), top
