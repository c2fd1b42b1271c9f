"""Worker and API decay with the model's half-life, whatever ZMOT_HALF_LIFE_HOURS says.

A model trained on profiles with a 4 h half-life is served with the default 72 h setting (and
the reverse). The worker's profile math, the journey stage of next-best-offer and the weights of
the profile route must all follow the model (:func:`recommender.core.runtime.resolve`): a cart
8 h old has faded below the stage threshold at 4 h (stage ``zmot``) but not at 72 h (``fmot``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from api.app import create_app
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.catalog import Catalog, Item
from recommender.core.events import Event
from recommender.core.journey import ACTIVE_KIND_WEIGHT, FMOT, ZMOT
from recommender.core.profile import Profile, ProfileParams
from recommender.core.replay import Profiler
from recommender.core.settings import Settings
from recommender.offline.training import TrainConfig, train
from stream.worker import build_profiler
from tests.api.support import serve
from tests.support.profiles import store_profile

pytestmark = pytest.mark.integration

HOUR = 3600.0
CART_AGE_S = 8 * HOUR

ITEMS = [
    Item("tv-1", "TV 55", "electronics.tv", "acme"),
    Item("tv-2", "TV 65", "electronics.tv", "acme"),
    Item("boots-1", "Boots", "outdoor.shoes", "trail"),
    Item("mount-1", "Wall mount", "electronics.accessories", "acme"),
]


def event(user_id: str, kind: str, ts: float, **fields: str) -> Event:
    return Event(user_id=user_id, type=kind, **fields).with_ts(ts)  # type: ignore[arg-type]  # kinds above are valid


def write_model(directory: Path, half_life_h: float) -> tuple[Path, Path]:
    """Train a small model on profiles decayed with ``half_life_h``; (model dir, catalog)."""
    catalog = Catalog({item.item_id: item for item in ITEMS})
    start = time.time() - 30 * 86400
    events: list[Event] = []
    for u in range(40):
        tv = "tv-1" if u % 2 else "tv-2"
        ts = start + u * 600
        for i, (kind, field) in enumerate(
            [("search", {"query": "tv repair"}), ("page_view", {"item_id": tv})]
            + [("add_to_cart", {"item_id": tv}), ("page_view", {"item_id": "mount-1"})]
        ):
            events.append(event(f"u{u}", kind, ts + 60 * i, **field))
    params = ProfileParams(half_life_s=half_life_h * HOUR)
    model = train(events, catalog, Profiler(catalog, params=params), TrainConfig(epochs=2))
    model_dir = directory / "model"
    model.save(model_dir)
    catalog_path = directory / "catalog.jsonl"
    catalog_path.write_text(
        "".join(
            json.dumps({"item_id": i.item_id, "title": i.title, "category": i.category}) + "\n"
            for i in ITEMS
        ),
        encoding="utf-8",
    )
    return model_dir, catalog_path


def carted_profile(profiler: Profiler, now: float) -> Profile:
    """A shopper who searched, viewed and put a TV in the cart ``CART_AGE_S`` ago."""
    profile = Profile()
    cart_ts = now - CART_AGE_S
    for ts, kind, field in [
        (cart_ts - 120, "search", {"query": "tv repair"}),
        (cart_ts - 60, "page_view", {"item_id": "tv-1"}),
        (cart_ts, "add_to_cart", {"item_id": "tv-1"}),
    ]:
        profiler.apply(profile, event("shopper", kind, ts, **field))
    return profile


@pytest.mark.parametrize(("model_h", "settings_h"), [(4.0, 72.0), (72.0, 4.0)])
async def test_worker_stage_and_profile_route_use_the_models_half_life(
    isolated: Settings, tmp_path: Path, model_h: float, settings_h: float
) -> None:
    model_dir, catalog_path = write_model(tmp_path, model_h)
    settings = isolated.model_copy(
        update={
            "model_dir": model_dir,
            "catalog_path": catalog_path,
            "half_life_hours": settings_h,
        }
    )
    half_life_s = model_h * HOUR

    # the worker
    profiler = build_profiler(settings)
    assert profiler.params.half_life_s == half_life_s

    # a profile the worker would have written, stored through the store
    now = time.time()
    profile = carted_profile(profiler, now)
    cart = profile.decayed(now, half_life_s)["kind:add_to_cart"]
    faded = cart < ACTIVE_KIND_WEIGHT
    assert faded == (model_h < 8.0)  # the data makes the two half-lives disagree
    redis = connect(settings.redis_url)
    store = ProfileStore(redis, settings.redis_prefix, ttl_s=600)
    try:
        await store_profile(store, "shopper", profile)
        async with serve(create_app(settings, producer=_NoSink())) as client:
            offer = await client.get("/v1/next-best-offer", params={"user_id": "shopper"})
            route = await client.get("/v1/users/shopper/profile")
    finally:
        await redis.delete(*[k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")])
        await redis.aclose(close_connection_pool=True)

    # the journey stage of next-best-offer
    assert offer.status_code == 200, offer.text
    assert offer.json()["stage"] == (ZMOT if faded else FMOT)

    # the profile route's decayed weights
    assert route.status_code == 200, route.text
    weights = route.json()["features"]
    assert weights["kind:add_to_cart"] == pytest.approx(cart, rel=1e-3)
    assert weights["kind:add_to_cart"] != pytest.approx(
        profile.decayed(now, settings_h * HOUR)["kind:add_to_cart"], rel=1e-2
    )


class _NoSink:
    """No Kafka needed: the test posts no events."""

    async def send_many(self, events: object) -> None:
        raise AssertionError("no events are posted here")
