"""Consent and erasure in Redis: one ``<prefix>person:<sha256(user_id)>`` hash per person.

The API writes it (``PUT .../consent``, ``DELETE /v1/users/{id}``) and reads it with the
profile on every next-best-offer request; the worker reads it with the profiles of each batch
and drops what the person did not allow (:meth:`~recommender.core.privacy.PrivacyState.withholds`).

Ordering matters more than atomicity here, and a pipeline keeps the order: the erasure record
(or a refusal) is written before the profile is deleted, so a worker batch that reads after the
write drops the events, and one that read before finds its profile fence moved (the profile is
gone) and reads again. One window stays open: a batch that read a user *without* a profile just
before the erasure can still write that user's first profile from events older than the erasure
(milliseconds wide; see SECURITY.md). The keys of one user are not in one Redis Cluster slot
(the profile key holds the raw id, the person key its hash), so no script spans them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from recommender.adapters.codec import (
    CONSENT_FIELD,
    DISMISSED_TAG,
    ERASED_FIELD,
    FEATURE_TAG,
    PURCHASE_TAG,
    SHOWN_TAG,
    person_key,
    privacy_from_values,
    profile_from_hash,
    profile_key,
)
from recommender.adapters.redis_store import connect
from recommender.core.errors import ConfigError
from recommender.core.events import Event
from recommender.core.privacy import PrivacyState, allowed_events
from recommender.core.profile import Profile
from recommender.core.settings import Settings, redact_url


@dataclass(frozen=True)
class Erased:
    """What one erasure removed."""

    profile: bool
    features: int
    purchases: int
    exposure: int
    consent: bool
    erased_at: float


class PrivacyStore:
    """Person hashes under ``<prefix>person:``, beside the profiles under the same prefix."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, user_id: str) -> str:
        return person_key(self.prefix, user_id)

    async def states(self, user_ids: Sequence[str]) -> list[PrivacyState]:
        """Each user's state, in one round trip."""
        if not user_ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hmget(self.key(user_id), [ERASED_FIELD, CONSENT_FIELD])
            results = await pipe.execute()
        return [privacy_from_values(erased, consent) for erased, consent in results]

    async def profiles_with_states(
        self, user_ids: Sequence[str]
    ) -> tuple[list[Profile | None], list[PrivacyState]]:
        """Profiles and states of many users in one round trip (the offer routes' read)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hgetall(profile_key(self.prefix, user_id))
                pipe.hmget(self.key(user_id), [ERASED_FIELD, CONSENT_FIELD])
            results = await pipe.execute()
        profiles = [profile_from_hash(m) if m else None for m in results[0::2]]
        states = [privacy_from_values(e, c) for e, c in results[1::2]]
        return profiles, states

    async def set_consent(self, user_id: str, profiling: bool) -> bool:
        """Record the person's choice; a refusal also deletes the profile. True if one was."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(self.key(user_id), CONSENT_FIELD, "1" if profiling else "0")
            if not profiling:
                pipe.delete(profile_key(self.prefix, user_id))
            results = await pipe.execute()
        return bool(not profiling and results[1])

    async def erase(self, user_id: str, at: float) -> Erased:
        """Delete everything kept about the person; keep only the erasure record (time ``at``).

        A later erasure moves the time forward; an earlier one never moves it back.
        """
        key = self.key(user_id)
        profile = profile_key(self.prefix, user_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(profile)
            pipe.hmget(key, [ERASED_FIELD, CONSENT_FIELD])
            stored, (before, consent) = await pipe.execute()
        erased_at = max(at, float(before)) if before is not None else at
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.hset(key, ERASED_FIELD, repr(erased_at))
            pipe.delete(profile)  # after the record: see the module docstring
            await pipe.execute()
        fields = [k.decode() if isinstance(k, bytes) else k for k in stored]
        return Erased(
            profile=bool(stored),
            features=sum(f.startswith(FEATURE_TAG) for f in fields),
            purchases=sum(f.startswith(PURCHASE_TAG) for f in fields),
            exposure=sum(f.startswith((SHOWN_TAG, DISMISSED_TAG)) for f in fields),
            consent=consent is not None,
            erased_at=erased_at,
        )


# --- offline: event files of `zmot train`, `evaluate`, `tune` (--respect-privacy) -----------

CHUNK = 5000
"""Users per Redis round trip when reading the states of an event file's people."""


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
    """``events`` without those of erased (up to the erasure) and non-consenting people,
    as the worker would drop them (for `zmot train`, `evaluate`, `tune` --respect-privacy)."""
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


__all__ = ["Erased", "PrivacyStore", "respect_privacy"]
