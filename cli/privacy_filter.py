"""`--respect-privacy` of `zmot train`, `evaluate` and `tune`: leave out of an event file what
the worker would drop (events up to a person's erasure, people without consent), read from the
erasure and consent records in ``ZMOT_REDIS_URL``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import connect
from recommender.core.errors import ConfigError
from recommender.core.events import Event
from recommender.core.privacy import PrivacyState, allowed_events
from recommender.core.settings import Settings, redact_url

CHUNK = 5000
"""Users per Redis round trip."""


async def _states(settings: Settings, users: list[str]) -> dict[str, PrivacyState]:
    client = connect(settings.redis_url)
    try:
        store = PrivacyStore(client, settings.redis_prefix)
        out: dict[str, PrivacyState] = {}
        for start in range(0, len(users), CHUNK):
            part = users[start : start + CHUNK]
            out.update(zip(part, await store.states(part), strict=True))
        return out
    except OSError as exc:
        raise ConfigError(
            f"--respect-privacy reads erasures from Redis at {redact_url(settings.redis_url)}: "
            f"{exc}"
        ) from exc
    finally:
        await client.aclose(close_connection_pool=True)


def respect_privacy(
    settings: Settings, events: Sequence[Event], log: Callable[[str], None]
) -> list[Event]:
    """``events`` without those of erased (up to the erasure) and non-consenting people."""
    from redis.exceptions import RedisError

    users = sorted({event.user_id for event in events})
    try:
        states = asyncio.run(_states(settings, users))
    except RedisError as exc:
        raise ConfigError(
            f"--respect-privacy cannot read Redis at {redact_url(settings.redis_url)}: {exc}"
        ) from exc
    kept, dropped = allowed_events(events, states, settings.default_consent == "granted")
    log(f"privacy: left out {dropped} of {len(events)} events (erased or without consent)")
    return kept
