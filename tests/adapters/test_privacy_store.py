"""`--respect-privacy` (`respect_privacy` of the privacy store): training and evaluation leave
out what the worker drops, read from the erasure and consent records in the real Redis."""

from __future__ import annotations

import asyncio

import pytest

from recommender.adapters.privacy_store import PrivacyStore, respect_privacy
from recommender.adapters.redis_client import client_for, close
from recommender.core.events import Event
from recommender.core.settings import Settings

pytestmark = pytest.mark.integration

T = 1_780_000_000.0


def view(user: str, ts: float) -> Event:
    return Event(user_id=user, type="page_view", item_id="tv-1", ts=int(ts * 1000))  # epoch ms


async def _record(settings: Settings) -> None:
    client = client_for(settings)
    store = PrivacyStore(client, settings.redis_prefix)
    await store.erase("anna", T)
    await store.set_consent("carl", False)
    await store.set_consent("dora", True)
    await close(client)


def test_erased_and_non_consenting_people_are_left_out_of_an_event_file(
    isolated: Settings,
) -> None:
    asyncio.run(_record(isolated))
    events = [view("anna", T - 1), view("anna", T), view("anna", T + 1), view("bob", T)]
    events += [view("carl", T), view("dora", T)]
    messages: list[str] = []
    kept = respect_privacy(isolated, events, messages.append)
    assert [(e.user_id, e.ts) for e in kept] == [("anna", T + 1), ("bob", T), ("dora", T)]
    assert messages == ["privacy: left out 3 of 6 events (erased or without consent)"]
    denied = isolated.model_copy(update={"default_consent": "denied"})
    assert [e.user_id for e in respect_privacy(denied, events, messages.append)] == ["dora"]


def test_an_erasure_deletes_the_decisions_kept_for_attribution(isolated: Settings) -> None:
    import time

    from recommender.adapters.decision_store import DecisionStore
    from recommender.adapters.keys import decision_key, decisions_key
    from recommender.core.attribution import DecisionRecord

    async def run() -> tuple[int, int]:
        client = client_for(isolated)
        decisions = DecisionStore(client, isolated.redis_prefix, 3600.0)
        now = time.time()
        records = [
            DecisionRecord(f"d-{user}-{n}", user, now - n, "exp", "a", {"o1": ("tv-1", 10.0)})
            for user in ("erin", "fred")
            for n in range(3)
        ]
        await decisions.put_many(records)
        await PrivacyStore(client, isolated.redis_prefix).erase("erin", now)
        left = {
            user: await client.exists(
                decisions_key(isolated.redis_prefix, user),
                *(decision_key(isolated.redis_prefix, r.decision_id) for r in records
                  if r.user_id == user),
            )
            for user in ("erin", "fred")
        }  # fmt: skip
        await close(client)
        return left["erin"], left["fred"]

    erin, fred = asyncio.run(run())
    assert erin == 0  # the index and the three records
    assert fred == 4  # someone else's stay
