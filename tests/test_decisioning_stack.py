"""Decisioning rules on the real stack: Kafka -> worker -> Redis -> API with the demo model.

One offer file (the demo shop's v1 lines plus v2 offers) and one worker serve every rule:
an expired and an ineligible offer are never returned; three impressions on the web cap an
offer on the ad placement; three dismissals suppress it; after a TV purchase the user gets a
TV accessory or support offer and no TV. Reload swaps the catalog without a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from recommender.adapters.kafka import EventProducer
from recommender.core.events import Event
from recommender.core.settings import Settings
from tests.api.support import serve

pytestmark = pytest.mark.integration

BIG = 1_000_000.0  # a value that would win every arbitration if the rules let it through
EXTRA = [
    {"offer_id": "tv-deal", "category": "electronics.tv", "title": "TV deal", "value": 5000,
     "max_impressions": 3, "channels": ["web", "ad"]},
    {"offer_id": "expired-tv", "category": "electronics.tv", "title": "Old", "value": BIG,
     "ends_at": "2020-01-01T00:00:00Z"},
    {"offer_id": "future-tv", "category": "electronics.tv", "title": "Soon", "value": BIG,
     "starts_at": "2099-01-01T00:00:00Z"},
    {"offer_id": "vip-tv", "category": "electronics.tv", "title": "VIP", "value": BIG,
     "eligibility": [{"requires_feature": "cat:vip"}]},
]  # fmt: skip
NEVER = {"expired-tv", "future-tv", "vip-tv"}
PLACEMENTS = "placements:\n  ad: {k: 3, channels: [ad]}\n  home: {k: 3, channels: [web]}\n"


def offers_file(directory: Path, base: Path) -> Path:
    path = directory / "offers.jsonl"
    lines = base.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines, *(json.dumps(o) for o in EXTRA)]) + "\n")
    return path


async def ask(client: httpx.AsyncClient, user: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/next-best-offer", params={"user_id": user, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert not NEVER & {o["offer_id"] for o in body["offers"]}, body["offers"]
    return body


async def until(
    client: httpx.AsyncClient, user: str, check: Callable[[dict[str, Any]], bool], **params: Any
) -> dict[str, Any]:
    """The first answer for ``user`` that passes ``check`` (the worker applies events async)."""
    deadline = time.monotonic() + 20
    while True:
        body = await ask(client, user, **params)
        if check(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


def has(offer_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: offer_id in {o["offer_id"] for o in body["offers"]}


def lacks(offer_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: not body["fallback"] and not has(offer_id)(body)


async def test_rules_hold_on_the_real_stack(
    isolated: Settings,
    demo_shop: Any,
    worker: Callable[..., Any],
    caught_up: Any,
    tmp_path: Path,
) -> None:
    placements = tmp_path / "placements.yaml"
    placements.write_text(PLACEMENTS)
    settings = isolated.model_copy(
        update={
            "catalog_path": demo_shop.data / "catalog.jsonl",
            "offers_path": offers_file(tmp_path, demo_shop.data / "offers.jsonl"),
            "placements_path": placements,
            "model_dir": demo_shop.model_dir,
        }
    )
    tv = next(i for i in demo_shop.catalog.items.values() if i.category == "electronics.tv")
    proc = worker(settings)
    run = uuid.uuid4().hex[:8]
    capped, dismisser, buyer = f"cap-{run}", f"dis-{run}", f"buy-{run}"
    ad = {"placement": "ad", "channel": "ad", "same_category": "true"}
    async with EventProducer(settings.kafka_bootstrap, settings.events_topic) as producer:
        await producer.send_many([Event(user_id="warm-up", type="page_view", item_id="x")])
        await caught_up(settings, proc, timeout_s=90)
        async with serve(create_app(settings)) as client:
            await producer.send_many(
                [Event(user_id=u, type="search", query="tv repair") for u in (capped, dismisser)]
            )
            # the TV deal is shown to both on the ad placement (and never the forbidden ones)
            for user in (capped, dismisser):
                first = await until(client, user, has("tv-deal"), **ad)
                assert first["stage"] == "zmot"

            # three impressions on the web cap it for the ad server
            seen = Event(
                user_id=capped, type="impression", offer_id="tv-deal", placement="home",
                channel="web",
            )  # fmt: skip
            await producer.send_many([seen, seen, seen])
            await until(client, capped, lacks("tv-deal"), **ad)
            web = await ask(client, capped, placement="home", channel="web")
            assert "tv-deal" not in {o["offer_id"] for o in web["offers"]}

            # two dismissals leave it, the third suppresses it
            no = Event(user_id=dismisser, type="dismiss", offer_id="tv-deal", channel="app")
            await producer.send_many([no, no])
            await caught_up(settings, proc, timeout_s=30)
            assert has("tv-deal")(await ask(client, dismisser, **ad))
            await producer.send_many([no])
            await until(client, dismisser, lacks("tv-deal"), **ad)

            # after a TV purchase: accessories or support, no TV for the window
            await producer.send_many(
                [
                    Event(user_id=buyer, type="search", query="fernseher"),
                    Event(user_id=buyer, type="page_view", item_id=tv.item_id),
                    Event(user_id=buyer, type="add_to_cart", item_id=tv.item_id),
                    Event(user_id=buyer, type="purchase", item_id=tv.item_id),
                ]
            )
            body = await until(client, buyer, lambda b: b["stage"] == "smot", k=3)
            categories = [o["category"] for o in body["offers"]]
            assert body["offers"] and not body["fallback"]
            assert "electronics.tv" not in categories, body["offers"]
            assert categories[0].startswith(("electronics.tv_accessories", "services.")), body
            assert any(c.startswith("electronics.tv_accessories") for c in categories), body

            # reload: a new file is active without a restart and its version is reported
            ready = (await client.get("/readyz")).json()
            before = ready["catalog_version"]
            assert body["catalog_version"] == before
            assert settings.offers_path is not None
            with settings.offers_path.open("a") as out:
                out.write(json.dumps({"offer_id": "new-one", "item_id": tv.item_id}) + "\n")
            reloaded = (await client.post("/v1/admin/reload")).json()
            assert reloaded["catalog_version"] != before
            assert (await client.get("/readyz")).json()["catalog_version"] == reloaded[
                "catalog_version"
            ]
            with settings.offers_path.open("a") as out:
                out.write('{"offer_id": "broken"}\n')
            bad = await client.post("/v1/admin/reload")
            assert bad.status_code == 422 and "item_id" in bad.json()["detail"][0]["reason"]
            still = (await client.get("/readyz")).json()["catalog_version"]
            assert still == reloaded["catalog_version"]
