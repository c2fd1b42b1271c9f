"""Anonymous to known, through the real API, worker, Kafka and Redis: a visitor browses under an
anonymous id, logs in (``identify`` links the ids), and the anonymous history counts for the
known user at serving time; each profile keeps its own offset fence (nothing is counted twice);
erasing the person erases the linked anonymous id too, and a replay of its old events stays out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from zmot_client import AsyncClient, OfferAnswer

from recommender.core.settings import Settings
from tests.support.processes import ApiProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_proxy_env")]

ANON = "anon-5f1c"
KNOWN = "customer-4711"
DAY_MS = 86_400_000


async def applied(client: AsyncClient, user_id: str, n: int, timeout_s: float = 60) -> None:
    """Wait until the worker has applied ``n`` events to the user's own profile."""
    deadline = time.monotonic() + timeout_s
    while (profile := await client.profile(user_id)) is None or profile.events_applied < n:
        assert time.monotonic() < deadline, (user_id, profile)
        await asyncio.sleep(0.2)


def items(answer: OfferAnswer) -> list[str]:
    return [offer.item_id for offer in answer.offers]


async def test_identify_serves_the_anonymous_history_for_the_known_user_and_erases_both(
    isolated: Settings,
    worker: Callable[..., Any],
    caught_up: Callable[..., Awaitable[None]],
    api_server: Callable[..., ApiProcess],
) -> None:
    proc = worker(isolated)
    api = api_server(isolated)
    now_ms = int(time.time() * 1000)
    anonymous_events = [
        {"user_id": ANON, "type": "search", "query": "tv", "ts": now_ms - 3000},
        {"user_id": ANON, "type": "page_view", "item_id": "tv-1", "ts": now_ms - 2000},
    ]
    async with AsyncClient(api.url, timeout=10) as client:
        assert await client.send_events(anonymous_events) == 2
        await applied(client, ANON, 2)
        before = await client.next_best_offer(KNOWN, k=3)
        assert not before.personalised  # nothing known under the user id yet

        link = await client.link(KNOWN, ANON)
        assert link.linked_ids == [ANON]
        after = await client.next_best_offer(KNOWN, k=3, language="en")
        assert after.personalised and items(after)[0].startswith("tv-"), after
        assert any("searched" in r for r in after.offers[0].reasons), after.offers[0]

        # The known user's own events add to the anonymous history, without moving it.
        boots = {"user_id": KNOWN, "type": "search", "query": "boots"}
        assert await client.send_events([boots, boots, boots]) == 3
        await applied(client, KNOWN, 3)
        both = await client.next_best_offer(KNOWN, k=3)
        assert both.personalised and "boots-1" in items(both), both
        assert any(item.startswith("tv-") for item in items(both)), both  # still the TV too
        alone = await client.next_best_offer(ANON, k=3)  # the anonymous id alone: no boots
        assert alone.personalised and "boots-1" not in items(alone), alone

        # Each stored profile is its own: the anonymous one still holds its two events, the
        # known one its one (a merge at serving time writes nothing, so fences are untouched).
        anon_profile = await client.profile(ANON)
        known_profile = await client.profile(KNOWN)
        assert anon_profile is not None and anon_profile.events_applied == 2
        assert known_profile is not None and known_profile.events_applied == 3
        assert not any(f.startswith("q:boots") for f in anon_profile.features)
        exported = await client.export(KNOWN)
        assert exported.linked_ids == [ANON]

        erased = await client.erase(KNOWN)
        assert erased.linked == 1 and erased.profile
        assert await client.profile(ANON) is None and await client.profile(KNOWN) is None
        assert (await client.export(ANON)).erased_at is not None
        assert (await client.export(KNOWN)).linked_ids == []

        # A replay of the anonymous id's old events (same event times) stays out for ever.
        assert await client.send_events(anonymous_events) == 2
        await caught_up(isolated, proc)
        assert await client.profile(ANON) is None
        stranger = await client.next_best_offer(KNOWN, k=3)
        assert not stranger.personalised
        # A new event after the erasure builds a new profile, as for anyone.
        fresh = {"user_id": ANON, "type": "search", "query": "tv", "ts": now_ms + DAY_MS}
        assert await client.send_events([fresh]) == 1
        await applied(client, ANON, 1)


async def test_a_refusal_of_consent_covers_the_linked_anonymous_id(
    isolated: Settings, worker: Callable[..., Any], api_server: Callable[..., ApiProcess]
) -> None:
    worker(isolated)
    api = api_server(isolated)
    async with AsyncClient(api.url, timeout=10) as client:
        await client.send_events([{"user_id": ANON, "type": "search", "query": "tv"}])
        await applied(client, ANON, 1)
        await client.link(KNOWN, ANON)
        refused = await client.consent(KNOWN, False)
        assert refused.profile_deleted  # the linked anonymous profile was deleted
        assert await client.profile(ANON) is None
        assert (await client.export(ANON)).consent.profiling is False
        assert not (await client.next_best_offer(KNOWN)).personalised
