"""Fixtures of the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from recommender.adapters.redis_store import connect
from recommender.core.settings import Settings


@pytest.fixture
async def client(stack: Settings) -> AsyncIterator[aioredis.Redis]:
    """A client of the test stack's Redis (closed after the test)."""
    redis = connect(stack.redis_url)
    yield redis
    await redis.aclose()
