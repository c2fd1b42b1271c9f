"""Fixtures of the API tests: the app in-process with its real lifespan.

The app runs through ``httpx.ASGITransport`` inside ``app.router.lifespan_context``, so start-up
and shut-down are the real ones; Redis and Kafka are the real test stack (``isolated`` gives each
test its own topic and key prefix).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.deps import EventSink
from api.engine import Engine
from recommender.adapters.redis_client import client_for, close
from recommender.adapters.redis_store import ProfileStore
from recommender.core.catalog import Catalog
from recommender.core.settings import Settings
from tests.api.support import (
    ITEMS,
    FakeArbiter,
    ServeFactory,
    TopicReader,
    serve,
    write_model,
)
from tests.api.support import (
    read_topic as _read_topic,
)
from tests.support.profiles import PutProfile, store_profile


@pytest.fixture
def catalog() -> Catalog:
    return Catalog({item.item_id: item for item in ITEMS})


@pytest.fixture
def model_files(tmp_path: Path) -> tuple[Path, Path]:
    """(model directory, catalog.jsonl) of the hand-made model."""
    return write_model(tmp_path)


@pytest.fixture
def fake_arbiter(catalog: Catalog) -> FakeArbiter:
    return FakeArbiter(catalog, default_k=Settings().default_k)


@pytest.fixture
def fake_engine(catalog: Catalog, fake_arbiter: FakeArbiter) -> Engine:
    return Engine(
        model_version="fake-1", catalog=catalog, arbiter=fake_arbiter, half_life_s=72 * 3600.0
    )


@pytest.fixture
def serve_app() -> ServeFactory:
    """``async with serve_app(settings, engine=..., producer=...) as client``."""

    def factory(
        settings: Settings, *, engine: Engine | None = None, producer: EventSink | None = None
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return serve(create_app(settings, engine=engine, producer=producer))

    return factory


@pytest.fixture
async def client(
    isolated: Settings, fake_engine: Engine, serve_app: ServeFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a fake arbiter, real Redis and real Kafka (this test's topic and prefix)."""
    async with serve_app(isolated, engine=fake_engine) as c:
        yield c


@pytest.fixture
async def store(isolated: Settings) -> AsyncIterator[ProfileStore]:
    """The profile store under this test's prefix; its keys are removed afterwards."""
    redis = client_for(isolated)
    yield ProfileStore(redis, isolated.redis_prefix, ttl_s=600)
    keys = [key async for key in redis.scan_iter(match=f"{isolated.redis_prefix}*")]
    if keys:
        await redis.delete(*keys)
    await close(redis)


@pytest.fixture
def put_profile(store: ProfileStore) -> PutProfile:
    """``await put_profile(user_id, profile)`` stores a new user's profile under this test."""
    return partial(store_profile, store)


@pytest.fixture
def read_topic() -> TopicReader:
    return _read_topic
