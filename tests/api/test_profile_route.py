"""``GET /v1/users/{user_id}/profile``: the live profile, decayed to now."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from recommender.core.settings import Settings
from tests.support.profiles import PutProfile, profile_of

pytestmark = pytest.mark.integration


async def test_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users/nobody/profile")
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


async def test_profile_is_decayed_to_now_and_sorted(
    client: httpx.AsyncClient, isolated: Settings, put_profile: PutProfile
) -> None:
    half_life = isolated.half_life_s
    written = time.time() - half_life  # one half-life ago: every weight has halved since
    bought = written - 3600.0
    profile = profile_of(
        {"cat:electronics.tv": 1.0, "q:tv": 3.0, "kind:search": 0.2},
        at=written,
        purchases={"tv-1": bought},
    )
    profile.n_events = 7
    await put_profile("u1", profile)
    response = await client.get("/v1/users/u1/profile")
    assert response.status_code == 200
    body = response.json()
    assert list(body["features"]) == ["q:tv", "cat:electronics.tv", "kind:search"]
    assert body["features"]["q:tv"] == pytest.approx(1.5, rel=1e-4)
    assert body["features"]["cat:electronics.tv"] == pytest.approx(0.5, rel=1e-4)
    assert body["events_applied"] == 7
    assert datetime.fromisoformat(body["last_update"]).timestamp() == pytest.approx(written)
    assert list(body["purchases"]) == ["tv-1"]
    assert datetime.fromisoformat(body["purchases"]["tv-1"]).timestamp() == pytest.approx(bought)
    assert body["user_id"] == "u1"


async def test_user_id_over_128_characters_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/users/{'u' * 129}/profile")
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "user_id"
