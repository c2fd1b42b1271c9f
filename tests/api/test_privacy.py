"""Erasure, export and consent through the real API, the real worker (a subprocess), Kafka and
Redis: an erased person's profile never comes back, not even from a replay of the topic by a
new consumer group; without consent no profile is kept and answers are not personalised."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from recommender.adapters.codec import CorruptProfileError
from recommender.adapters.keys import person_key
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import ProfileStore, read_profiles
from recommender.core.settings import Settings
from tests.support.profiles import PutProfile, profile_of, stored_profiles

pytestmark = pytest.mark.integration


def at(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def history(user_id: str, start: float) -> list[dict[str, Any]]:
    """A search, two views and a purchase, one minute apart from ``start``."""
    kinds: list[dict[str, Any]] = [
        {"type": "search", "query": "fernseher reparatur"},
        {"type": "page_view", "item_id": "tv-1"},
        {"type": "add_to_cart", "item_id": "tv-1"},
        {"type": "purchase", "item_id": "tv-1"},
    ]
    return [{"user_id": user_id, "ts": at(start + 60 * i), **kind} for i, kind in enumerate(kinds)]


async def redis_dump(store: ProfileStore, prefix: str) -> list[tuple[str, str]]:
    """Every (key, field-or-value) under ``prefix``, as text (a profile as what it holds)."""
    client = store.client
    out: list[tuple[str, str]] = []
    async for raw in client.scan_iter(match=f"{prefix}*"):
        key = raw.decode()
        kind = (await client.type(key)).decode()
        if kind == "hash":
            for field, value in (await client.hgetall(key)).items():
                out.append((key, f"{field.decode()}={value.decode()}"))
        elif kind == "string":
            raw = await client.get(key)
            try:  # a profile names its features by vocabulary ids: look at what it holds
                text = repr((await read_profiles(client, [key]))[0])
            except (CorruptProfileError, ValueError):  # not a profile (key or value)
                text = raw.decode()
            out.append((key, text))
        else:
            out.append((key, kind))
    return out


async def test_erased_person_stays_erased_through_a_replay_by_a_new_consumer_group(
    isolated: Settings,
    client: httpx.AsyncClient,
    store: ProfileStore,
    worker: Callable[..., Any],
    caught_up: Callable[..., Awaitable[None]],
) -> None:
    start = time.time() - 3600
    posted = await client.post(
        "/v1/events", json=history("anna@example.com", start) + history("bob", start)
    )
    assert posted.status_code == 202
    first = worker(isolated)
    await caught_up(isolated, first, timeout_s=90)

    # The export lists what was stored.
    export = (await client.get("/v1/users/anna@example.com/export")).json()
    assert export["erased_at"] is None
    assert export["consent"] == {"profiling": None, "default": "granted", "effective": True}
    profile = export["profile"]
    assert profile["events_applied"] == 4
    assert {"q:fernseher", "q:reparatur", "item:tv-1"} <= set(profile["features"])
    assert list(profile["purchases"]) == ["tv-1"]

    erased = (await client.delete("/v1/users/anna@example.com")).json()
    assert erased["profile"] is True and erased["purchases"] == 1 and erased["features"] > 0
    assert set(await stored_profiles(store)) == {"bob"}
    # No Redis key or value keeps the raw id; the erasure record is under its hash.
    dump = await redis_dump(store, isolated.redis_prefix)
    assert not [pair for pair in dump if "anna" in pair[0] or "anna" in pair[1]]
    record = person_key(isolated.redis_prefix, "anna@example.com")
    assert [value for key, value in dump if key == record][0].startswith("erased_at=")
    assert first.stop() == 0

    # A new consumer group reads the whole topic again: bob's events are applied again from
    # nothing (his profile is deleted first), anna's stay out.
    await store.client.delete(store.key("bob"))
    again = isolated.model_copy(update={"consumer_group": isolated.consumer_group + "-again"})
    second = worker(again)
    await caught_up(again, second, timeout_s=90)
    profiles = await stored_profiles(store)
    assert set(profiles) == {"bob"} and profiles["bob"].n_events == 4
    assert second.stop() == 0
    assert "withheld=4" in second.log_text()
    export = (await client.get("/v1/users/anna@example.com/export")).json()
    assert export["profile"] is None and export["erased_at"] == erased["erased_at"]

    # An event after the erasure builds a new profile, of that event only.
    third = worker(again)
    new = {"user_id": "anna@example.com", "type": "page_view", "item_id": "boots-1"}
    assert (await client.post("/v1/events", json={**new, "ts": at(time.time())})).status_code == 202
    await caught_up(again, third, timeout_s=90)
    anna = (await stored_profiles(store))["anna@example.com"]
    assert anna.n_events == 1 and not anna.purchases
    assert not any(name.startswith("q:") for name in anna.weights)


async def test_without_consent_no_profile_is_kept_and_offers_are_not_personalised(
    isolated: Settings,
    client: httpx.AsyncClient,
    store: ProfileStore,
    put_profile: PutProfile,
    worker: Callable[..., Any],
    caught_up: Callable[..., Awaitable[None]],
) -> None:
    await put_profile("carla", profile_of({"q:tv": 2.0}))
    nbo = "/v1/next-best-offer?user_id=carla"
    assert (await client.get(nbo)).json()["personalised"] is True
    refused = await client.put("/v1/users/carla/consent", json={"profiling": False})
    assert refused.json() == {"user_id": "carla", "profiling": False, "profile_deleted": True}
    assert await store.get("carla") is None

    proc = worker(isolated)
    posted = await client.post("/v1/events", json=history("carla", time.time() - 600))
    assert posted.status_code == 202
    await caught_up(isolated, proc, timeout_s=90)
    assert await store.get("carla") is None
    answer = (await client.get(nbo)).json()
    assert answer["personalised"] is False and answer["fallback"] is True
    export = (await client.get("/v1/users/carla/export")).json()
    assert export["consent"]["effective"] is False and export["profile"] is None

    # Consent given: new events build a profile again.
    assert (
        await client.put("/v1/users/carla/consent", json={"profiling": True})
    ).status_code == 200
    view = {"user_id": "carla", "type": "page_view", "item_id": "tv-1", "ts": at(time.time())}
    assert (await client.post("/v1/events", json=view)).status_code == 202
    await caught_up(isolated, proc, timeout_s=90)
    assert (await store.get("carla")) is not None
    assert (await client.get(nbo)).json()["personalised"] is True
    assert proc.stop() == 0
    assert "withheld=4" in proc.log_text()


async def test_default_consent_denied_keeps_no_profile_of_people_who_never_chose(
    isolated: Settings,
    store: ProfileStore,
    put_profile: PutProfile,
) -> None:
    """The worker's and the API's reading of ZMOT_DEFAULT_CONSENT, on the stores directly."""
    privacy = PrivacyStore(store.client, isolated.redis_prefix)
    await put_profile("dora", profile_of({"q:tv": 1.0}))
    await privacy.set_consent("emil", True)
    [dora, emil, fritz] = await privacy.states(["dora", "emil", "fritz"])
    assert not dora.consents(default_granted=False) and emil.consents(default_granted=False)
    assert fritz.consents(default_granted=True)
