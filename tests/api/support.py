"""Helpers of the API tests (the fixtures that use them are in ``conftest.py``).

A hand-made two-dimensional model gives exact answers: "tv" features point at TV items, "boots"
features at boots.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from api.engine import Decider
from recommender.adapters.localstack import free_port
from recommender.core.arbitration import OfferRequest, RatingLike
from recommender.core.catalog import Catalog, Item
from recommender.core.events import Event
from recommender.core.model import Model
from recommender.core.offers import OfferCatalog, catalog_offers
from recommender.core.placements import Placements
from recommender.core.profile import Profile, ProfileParams
from recommender.core.registry import Registry
from recommender.core.scoring import Decision, ScoredOffer, ServedOffer
from recommender.core.settings import Settings

ITEMS = [
    Item("tv-1", title="55in TV", category="electronics.tv", brand="Vista"),
    Item("tv-2", title="65in TV", category="electronics.tv", brand="Vista"),
    Item("boots-1", title="Hiking boots", category="outdoor.shoes", brand="Trail"),
    Item("mount-1", title="Wall mount", category="electronics.accessories", brand="Vista"),
]
MODEL_VERSION = "test-model-1"

ServeFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
TopicReader = Callable[[Settings], Awaitable[list[tuple[bytes | None, bytes]]]]


def dead_redis_url() -> str:
    """A Redis URL where nothing listens (connections are refused at once)."""
    return f"redis://127.0.0.1:{free_port()}/0"


def two_generations(model_dir: Path, root: Path) -> Registry:
    """A registry of the hand-made model as v1 (active) and v2, whose profile half-life
    differs: v2 needs profiles rebuilt its way (blue/green tests)."""
    base = Model.load(model_dir)
    registry = Registry(root)
    registry.register(replace(base, version="v1"))
    registry.register(replace(base, version="v2", profile_params=ProfileParams(half_life_s=3600.0)))
    registry.activate("v1")
    return registry


def write_model(directory: Path) -> tuple[Path, Path]:
    """Save the hand-made model and its catalog; (model directory, catalog.jsonl)."""
    features = ["q:tv", "cat:electronics.tv", "q:boots", "cat:outdoor.shoes", "kind:search"]
    embeddings = np.array([[1, 0], [0.5, 0], [0, 1], [0, 0.5], [0, 0]], dtype=np.float32)
    items = [item.item_id for item in ITEMS]
    vectors = np.array([[1, 0], [0.9, 0], [0, 1], [0.2, 0.2]], dtype=np.float32)
    model = Model(
        version=MODEL_VERSION,
        feature_names=features,
        item_ids=items,
        feature_embeddings=embeddings,
        feature_biases=np.zeros(len(features), dtype=np.float32),
        item_vectors=vectors,
        item_biases=np.zeros(len(items), dtype=np.float32),
        popular=["boots-1", "tv-1", "mount-1", "tv-2"],
    )
    model_dir = directory / "model"
    model.save(model_dir)
    catalog_path = directory / "catalog.jsonl"
    with catalog_path.open("w", encoding="utf-8") as out:
        for item in ITEMS:
            row = {
                "item_id": item.item_id,
                "title": item.title,
                "category": item.category,
                "brand": item.brand,
            }
            out.write(json.dumps(row) + "\n")
    return model_dir, catalog_path


@dataclass
class FakeArbiter:
    """The API's :class:`~api.engine.Decider` surface over the catalog in order; records every
    decision asked for."""

    catalog: Catalog
    default_k: int = 3
    calls: list[tuple[Profile | None, OfferRequest, float]] = field(default_factory=list)
    placements: Placements = field(default_factory=Placements)
    offers: OfferCatalog = field(init=False)

    def __post_init__(self) -> None:
        self.offers = catalog_offers(self.catalog)

    @property
    def version(self) -> str:
        return self.offers.version

    def decide(self, profile: Profile | None, request: OfferRequest, now: float) -> Decision:
        self.calls.append((profile, request, now))
        items = list(self.catalog.items.values())[: request.k or self.default_k]
        offers = [
            ScoredOffer(
                ServedOffer(f"o-{i.item_id}", i.item_id, f"Deal: {i.title}"),
                i,
                1.0 / (n + 1),
                [f"reason {n}"],
            )
            for n, i in enumerate(items)
        ]
        return Decision(offers, fallback=profile is None)

    def fallback(
        self,
        profile: Profile | None,
        request: OfferRequest,
        now: float,
        *,
        stage: str | None = None,
        note: str | None = None,
    ) -> Decision:
        return replace(self.decide(None, request, now), note=note)

    def with_ratings(
        self, decision: Decision, ratings: Mapping[str, RatingLike], lang: str
    ) -> Decision:
        return decision

    def with_offers(self, offers: OfferCatalog, placements: Placements | None = None) -> Decider:
        return replace(self, calls=[])


@dataclass
class FailingSink:
    """A producer whose broker is gone."""

    error: Exception

    async def send_many(self, events: Sequence[Event]) -> None:
        raise self.error


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``app`` with the app's real start-up and shut-down around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://zmot.test") as client:
            yield client


async def read_topic(settings: Settings) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) now in the events topic, read from the beginning to the end."""
    consumer = AIOKafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 15
        # Without a group the consumer assigns itself every partition once metadata is in.
        while not consumer.assignment():
            assert time.monotonic() < deadline, f"topic {settings.events_topic} not found"
            await asyncio.sleep(0.05)
        parts = sorted(consumer.assignment())
        end = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        records: list[tuple[bytes | None, bytes]] = []
        while any([await consumer.position(tp) < end[tp] for tp in parts]):
            assert time.monotonic() < deadline, "topic not read to its end within 15 s"
            batch = await consumer.getmany(*parts, timeout_ms=500)
            for messages in batch.values():
                records.extend((m.key, m.value) for m in messages)
        return records
    finally:
        await consumer.stop()
