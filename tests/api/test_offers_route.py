"""``GET /v1/next-best-offer``: profile from Redis, arbiter, response shape and errors."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from api.app import create_app
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.settings import Settings
from tests.api.support import (
    MODEL_VERSION,
    FakeArbiter,
    dead_redis_url,
    serve,
)
from tests.support.profiles import PutProfile, profile_of

pytestmark = pytest.mark.integration


async def test_known_user_is_ranked_on_the_stored_profile(
    client: httpx.AsyncClient, fake_arbiter: FakeArbiter, put_profile: PutProfile
) -> None:
    await put_profile("u1", profile_of({"q:tv": 2.0, "cat:electronics.tv": 1.0}))
    before = time.time()
    response = await client.get(
        "/v1/next-best-offer", params={"user_id": "u1", "k": 2, "placement": "home"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "user_id": "u1",
        "offers": [
            {
                "offer_id": "o-tv-1",
                "item_id": "tv-1",
                "title": "Deal: 55in TV",
                "category": "electronics.tv",
                "score": 1.0,
                "reasons": ["reason 0"],
                "policy": "greedy",
                "probability": 1.0,
            },
            {
                "offer_id": "o-tv-2",
                "item_id": "tv-2",
                "title": "Deal: 65in TV",
                "category": "electronics.tv",
                "score": 0.5,
                "reasons": ["reason 1"],
                "policy": "greedy",
                "probability": 1.0,
            },
        ],
        "model_version": "fake-1",
        "fallback": False,
        "placement": "home",
        "stage": "stimulus",  # what the fake's decision says
        "decision_id": None,
        "catalog_version": fake_arbiter.version,
        "note": None,
        "personalised": True,
    }
    [(profile, request, now)] = fake_arbiter.calls
    assert profile is not None
    assert profile.weights == {"q:tv": 2.0, "cat:electronics.tv": 1.0}
    assert (request.k, request.placement) == (2, "home")
    assert before <= now <= time.time()


async def test_unknown_user_gets_the_fallback_and_default_k(
    client: httpx.AsyncClient, fake_arbiter: FakeArbiter, isolated: Settings
) -> None:
    response = await client.get("/v1/next-best-offer", params={"user_id": "nobody"})
    assert response.status_code == 200
    body = response.json()
    assert body["fallback"] is True
    assert body["placement"] is None
    assert len(body["offers"]) == isolated.default_k
    # no k asked: the arbiter applies the placement's k, else ZMOT_DEFAULT_K
    assert [(p, r.k) for p, r, _ in fake_arbiter.calls] == [(None, None)]


@pytest.mark.parametrize(
    ("params", "field", "reason"),
    [
        ({"user_id": "u1", "k": 0}, "k", "greater than or equal to 1"),
        ({"user_id": "u1", "k": 101}, "k", "k must be at most 100"),
        ({"user_id": "u1", "k": "three"}, "k", "valid integer"),
        ({}, "user_id", "Field required"),
        ({"user_id": ""}, "user_id", "at least 1 character"),
        ({"user_id": "u" * 129}, "user_id", "at most 128 characters"),
        ({"user_id": "u1", "placement": ""}, "placement", "at least 1 character"),
    ],
)
async def test_bad_query_is_422_naming_the_field(
    client: httpx.AsyncClient,
    fake_arbiter: FakeArbiter,
    params: dict[str, object],
    field: str,
    reason: str,
) -> None:
    response = await client.get("/v1/next-best-offer", params=params)  # type: ignore[arg-type]
    assert response.status_code == 422
    [item] = response.json()["detail"]
    assert item["field"] == field
    assert reason in item["reason"]
    assert fake_arbiter.calls == []


async def test_redis_down_is_a_fallback_answer_not_an_error(
    isolated: Settings, fake_engine: object, serve_app: object
) -> None:
    app = create_app(isolated, engine=fake_engine)  # type: ignore[arg-type]
    async with serve(app) as client:
        _break_redis(app)
        for _ in range(5):  # the breaker opens after 3 failures; answers stay the same
            response = await client.get("/v1/next-best-offer", params={"user_id": "u1"})
            assert response.status_code == 200
            body = response.json()
            assert body["fallback"] is True and body["note"].startswith("profile store unavail")
        assert app.state.services.breaker.state == "open"
        batch = await client.post("/v1/next-best-offer:batch", json={"user_ids": ["u1", "u2"]})
        assert batch.status_code == 200
        assert [r["fallback"] for r in batch.json()["results"]] == [True, True]
        # The profile route has no answer without the profile: it says what is down.
        profile = await client.get("/v1/users/u1/profile")
        assert profile.status_code == 503
        assert profile.headers["retry-after"] == str(isolated.retry_after_s)
        assert profile.json()["detail"].startswith("profile store (Redis) unavailable")


def _break_redis(app: FastAPI) -> None:
    """Point the running app's profile store at a port where nothing listens."""
    services = app.state.services
    store = services.store
    client = connect(dead_redis_url())
    dead = ProfileStore(client, store.prefix, ttl_s=60)
    privacy = PrivacyStore(client, store.prefix)
    app.state.services = dataclasses.replace(services, store=dead, privacy=privacy)


async def test_real_model_ranks_tv_offers_for_a_tv_search(
    isolated: Settings, model_files: tuple[Path, Path], put_profile: PutProfile
) -> None:
    """The whole path with the real loader and ranker: a TV search gets TV offers with reasons,
    and an item bought yesterday is not offered again."""
    model_dir, catalog_path = model_files
    # this test is about the exact item bought: substitutes (same category) stay offerable
    settings = isolated.model_copy(
        update={
            "model_dir": model_dir,
            "catalog_path": catalog_path,
            "substitute_exclusion_days": 0.0,
        }
    )
    now = time.time()
    await put_profile("tv-fan", profile_of({"q:tv": 1.5, "kind:search": 0.1}))
    await put_profile(
        "tv-owner", profile_of({"q:tv": 1.5, "cat:electronics.tv": 3.0}, purchases={"tv-1": now})
    )
    async with serve(create_app(settings)) as client:
        same = {"same_category": "true"}  # two TVs may be listed (diversity is tested apart)
        fan = (await client.get("/v1/next-best-offer", params={"user_id": "tv-fan", **same})).json()
        owner = (
            await client.get("/v1/next-best-offer", params={"user_id": "tv-owner", **same})
        ).json()
        stranger = (await client.get("/v1/next-best-offer", params={"user_id": "new"})).json()
    assert fan["model_version"] == MODEL_VERSION
    assert fan["fallback"] is False
    assert [o["item_id"] for o in fan["offers"][:2]] == ["tv-1", "tv-2"]
    assert fan["offers"][0]["reasons"] == ["you searched 'tv'"]
    assert fan["offers"][0]["category"] == "electronics.tv"
    assert fan["offers"][0]["title"] == "55in TV"
    # L1-normalised q:tv . each item vector, then standardised over the items (z-score)
    raw = np.array([1.0, 0.9, 0.0, 0.2]) * (1.5 / 1.6)
    z = (raw - raw.mean()) / raw.std()
    assert fan["offers"][0]["score"] == pytest.approx(z[0], rel=1e-5)
    assert fan["offers"][1]["score"] == pytest.approx(z[1], rel=1e-5)
    assert "tv-1" not in [o["item_id"] for o in owner["offers"]]
    assert owner["offers"][0]["item_id"] == "tv-2"
    assert stranger["fallback"] is True
    assert [o["item_id"] for o in stranger["offers"]] == ["boots-1", "tv-1", "mount-1"]


async def test_a_newline_in_the_path_cannot_forge_a_log_line(
    isolated: Settings, fake_engine: object, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(isolated, engine=fake_engine)  # type: ignore[arg-type]
    async with serve(app) as client:
        _break_redis(app)
        with caplog.at_level(logging.WARNING, logger="zmot.api"):
            response = await client.get("/v1/users/u1%0A2026-01-01 CRITICAL forged/profile")
    assert response.status_code == 503
    [record] = [r for r in caplog.records if "Redis error" in r.getMessage()]
    assert "\n" not in record.getMessage()
    assert "/v1/users/{user_id}/profile" in record.getMessage()
