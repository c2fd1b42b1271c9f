"""Consent and erasure in Redis: one ``<prefix>person:{tag}<sha256(user_id)>`` hash per person.

The API writes it (``PUT .../consent``, ``DELETE /v1/users/{id}``) and reads it with the
profile on every next-best-offer request; the worker reads it with the profiles of each batch
and drops what the person did not allow (:meth:`~recommender.core.privacy.PrivacyState.withholds`).

Ordering matters more than atomicity here, and a pipeline keeps the order: the erasure record
(or a refusal) is written before the profile is deleted, so a worker batch that reads after the
write drops the events, and one that read before finds its profile fence moved (the profile is
gone) and reads again. One window stays open: a batch that read a user *without* a profile just
before the erasure can still write that user's first profile from events older than the erasure
(milliseconds wide; see SECURITY.md). Every key of one person (profile, links, privacy record)
carries the same hash tag (:mod:`recommender.adapters.keys`), so on a Redis Cluster they live on
one node and a pipeline still writes them in order (the cluster client keeps the order of the
commands it sends to one node); the anonymous ids linked to a person are other people's keys,
erased one after the other.

Profiles are read through :mod:`recommender.adapters.redis_store` (the packed form, or a hash
written by an older worker) in the same pipeline as the person hashes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import RedisError

from recommender.adapters.codec import (
    CONSENT_FIELD,
    ERASED_FIELD,
    links_key,
    person_key,
    privacy_from_values,
    profile_key,
)
from recommender.adapters.keys import decision_key, decisions_key, prefix_of_profile_key
from recommender.adapters.redis_client import RedisClient, client_for, close, is_cluster
from recommender.adapters.redis_mux import MuxConnection
from recommender.adapters.redis_store import (
    decode_profiles,
    queue_profile_reads,
    read_profiles,
)
from recommender.adapters.vocabulary import vocabulary
from recommender.core.errors import ConfigError
from recommender.core.events import Event
from recommender.core.privacy import NO_STATE, PrivacyState, allowed_events
from recommender.core.profile import Profile, merged
from recommender.core.settings import Settings, redact_url

MAX_LINKS = 16
"""Anonymous ids one known user may have linked (devices, cleared cookies); beyond it
:meth:`PrivacyStore.link` refuses new links."""


@dataclass(frozen=True)
class Erased:
    """What one erasure removed (``linked``: anonymous ids linked to the person, erased too)."""

    profile: bool
    features: int
    purchases: int
    exposure: int
    consent: bool
    erased_at: float
    linked: int = 0


class PrivacyStore:
    """Person hashes under ``<prefix>person:``, beside the profiles under the same prefix."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        profile_prefix: str | None = None,
        also_delete: tuple[str, ...] = (),
        mux: MuxConnection | None = None,
    ) -> None:
        """``profile_prefix``: where the served profiles are (the live profile generation's
        prefix, :mod:`recommender.core.generations`; default ``prefix``); ``also_delete``:
        profile prefixes a refusal or an erasure also deletes from (a rebuild in progress);
        ``mux``: a shared connection to the same (single) server for the served profiles'
        read, the API's hot path (:mod:`recommender.adapters.redis_mux`)."""
        self.client = client
        self.mux = mux
        self.prefix = prefix
        self.profile_prefix = prefix if profile_prefix is None else profile_prefix
        # Found once, not per read: whether the client is a cluster's (an isinstance through
        # redis-py's protocol classes), and the vocabulary of the served profiles (every
        # profile key of a prefix names the same one: the regex's first match lies in the
        # prefix, or is the key's own "profile:{tag}").
        self._together = not is_cluster(client)
        prefix_of_profiles = prefix_of_profile_key(profile_key(self.profile_prefix, "-"))
        self._vocab = vocabulary(client, prefix_of_profiles)
        self.also_delete = also_delete

    def _profile(self, user_id: str) -> str:
        return profile_key(self.profile_prefix, user_id)

    def _profiles_everywhere(self, user_id: str) -> list[str]:
        """The person's profile keys in every generation that may hold one."""
        return [profile_key(p, user_id) for p in (self.profile_prefix, *self.also_delete)]

    def key(self, user_id: str) -> str:
        return person_key(self.prefix, user_id)

    async def states(self, user_ids: Sequence[str]) -> list[PrivacyState]:
        """Each user's state: one ``EXISTS`` of all their person hashes, and only when some
        exist a second round trip with one ``HMGET`` each (most people never chose nor were
        erased; a command per person was a large share of the worker's Redis time)."""
        if not user_ids:
            return []
        if not await self.client.exists(*(self.key(u) for u in user_ids)):
            return [NO_STATE] * len(user_ids)
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hmget(self.key(user_id), [ERASED_FIELD, CONSENT_FIELD])
            results = await pipe.execute()
        return [privacy_from_values(erased, consent) for erased, consent in results]

    async def profiles_with_states(
        self, user_ids: Sequence[str]
    ) -> tuple[list[Profile | None], list[PrivacyState]]:
        """Profiles and states of many users in one round trip (the export's read)."""
        profiles, states, _ = await self._stored(user_ids, with_links=False)
        return profiles, states

    async def _stored(
        self, user_ids: Sequence[str], *, with_links: bool
    ) -> tuple[list[Profile | None], list[PrivacyState], list[list[str]]]:
        """Each user's stored profile, privacy state and (``with_links``) linked anonymous
        ids, in one round trip."""
        if not user_ids:
            return [], [], []
        per_user = 2 if with_links else 1
        keys = [self._profile(user_id) for user_id in user_ids]
        together = self._together
        if together and self.mux is not None:
            results = await self.mux.execute(self._read_commands(user_ids, keys, with_links))
        else:
            results = await self._pipelined(user_ids, keys, with_links, together)
        if together:
            values, existing, *results = results
            profiles = await decode_profiles(self.client, keys, values, existing, vocab=self._vocab)
        else:
            profiles = await read_profiles(self.client, keys)
        states = [privacy_from_values(e, c) for e, c in results[0::per_user]]
        links = (
            [sorted(_text(m) for m in members) for members in results[1::per_user]]
            if with_links
            else [[] for _ in user_ids]
        )
        return profiles, states, links

    def _read_commands(
        self, user_ids: Sequence[str], keys: list[str], with_links: bool
    ) -> list[list[str]]:
        """The commands of :meth:`_pipelined` on one server, for :attr:`mux`."""
        commands = [["MGET", *keys], ["EXISTS", *keys]]
        for user_id in user_ids:
            commands.append(["HMGET", self.key(user_id), ERASED_FIELD, CONSENT_FIELD])
            if with_links:
                commands.append(["SMEMBERS", links_key(self.prefix, user_id)])
        return commands

    async def _pipelined(
        self, user_ids: Sequence[str], keys: list[str], with_links: bool, together: bool
    ) -> list[Any]:
        """The replies of :meth:`_stored`'s round trip through redis-py (with the profiles
        when ``together``)."""
        async with self.client.pipeline(transaction=False) as pipe:
            if together:  # a cluster's MGET cannot span slots: read_profiles splits it
                queue_profile_reads(pipe, keys)
            for user_id in user_ids:
                pipe.hmget(self.key(user_id), [ERASED_FIELD, CONSENT_FIELD])
                if with_links:
                    pipe.smembers(links_key(self.prefix, user_id))
            return list(await pipe.execute())

    async def served_profiles(
        self, user_ids: Sequence[str], half_life_s: float
    ) -> tuple[list[Profile | None], list[PrivacyState]]:
        """As :meth:`profiles_with_states`, with each known user's linked anonymous profiles
        merged in (:func:`~recommender.core.profile.merged`): one round trip, and a second
        only when someone asked for has links."""
        profiles, states, links = await self._stored(user_ids, with_links=True)
        wanted = sorted({anon for ids in links for anon in ids})
        if not wanted:
            return profiles, states
        stored = await read_profiles(self.client, [self._profile(a) for a in wanted])
        # A linked profile that exists was allowed: a refusal or an erasure deletes it.
        linked = {anon: p for anon, p in zip(wanted, stored, strict=True) if p is not None}
        out: list[Profile | None] = []
        for profile, ids in zip(profiles, links, strict=True):
            parts = [p for p in [profile, *(linked.get(a) for a in ids)] if p is not None]
            if len(parts) > 1:
                out.append(merged(parts, half_life_s))
            else:
                out.append(parts[0] if parts else None)
        return out, states

    async def link(self, user_id: str, anonymous_id: str, ttl_s: float) -> bool:
        """Link an anonymous id's history to a known user (``identify``): served together, and
        erased together. False when the ids are equal or the user has :data:`MAX_LINKS`. The
        link expires with the profiles (``ttl_s`` after the last link)."""
        if anonymous_id == user_id:
            return False
        key = links_key(self.prefix, user_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.scard(key)
            pipe.sismember(key, anonymous_id)
            count, known = await pipe.execute()
        if count >= MAX_LINKS and not known:
            return False
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.sadd(key, anonymous_id)
            pipe.expire(key, max(1, int(ttl_s)))
            await pipe.execute()
        return True

    async def linked(self, user_id: str) -> list[str]:
        """The anonymous ids linked to a known user."""
        return sorted(_text(m) for m in await self.client.smembers(links_key(self.prefix, user_id)))

    async def set_consent(self, user_id: str, profiling: bool) -> bool:
        """Record the person's choice; a refusal also deletes the profile. True if one was."""
        linked = [] if profiling else await self.linked(user_id)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(self.key(user_id), CONSENT_FIELD, "1" if profiling else "0")
            if not profiling:
                pipe.delete(*self._profiles_everywhere(user_id))
                # The linked anonymous ids are the same person: refused, and their profiles
                # deleted, in the same order (record first).
                for anon in linked:
                    pipe.hset(self.key(anon), CONSENT_FIELD, "0")
                    pipe.delete(*self._profiles_everywhere(anon))
            results = await pipe.execute()
        return bool(not profiling and (results[1] or any(results[3::2])))

    async def erase(self, user_id: str, at: float) -> Erased:
        """Delete everything kept about the person, and about the anonymous ids linked to
        them, keeping only an erasure record (time ``at``) for each, so the worker drops their
        older events for ever. The counts are the person's own profile's.

        A later erasure moves the time forward; an earlier one never moves it back.
        """
        linked = await self.linked(user_id)
        for anon in linked:
            await self._erase_one(anon, at)
        erased = await self._erase_one(user_id, at)
        await self.client.delete(links_key(self.prefix, user_id))
        return replace(erased, linked=len(linked))

    async def _erase_one(self, user_id: str, at: float) -> Erased:
        key = self.key(user_id)
        profile = self._profile(user_id)
        decisions = decisions_key(self.prefix, user_id)
        (stored,) = await read_profiles(self.client, [profile])
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(key, [ERASED_FIELD, CONSENT_FIELD])
            pipe.zrange(decisions, 0, -1)
            (before, consent), decided = await pipe.execute()
        erased_at = max(at, float(before)) if before is not None else at
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.hset(key, ERASED_FIELD, repr(erased_at))
            pipe.delete(*self._profiles_everywhere(user_id))  # after the record: module doc
            # the decisions kept for attribution name the person: their index and records
            pipe.delete(decisions)
            for decision_id in decided:  # one key each: another slot on a Redis Cluster
                pipe.delete(decision_key(self.prefix, _text(decision_id)))
            await pipe.execute()
        return Erased(
            profile=stored is not None,
            features=0 if stored is None else len(stored.weights),
            purchases=0 if stored is None else len(stored.purchases),
            exposure=0 if stored is None else _exposure_entries(stored),
            consent=consent is not None,
            erased_at=erased_at,
        )


def _exposure_entries(profile: Profile) -> int:
    """(offer, hour) entries of impressions and dismissals kept in a profile."""
    return sum(
        len(per_hour) for kind in (profile.shown, profile.dismissed) for per_hour in kind.values()
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- offline: event files of `zmot train`, `evaluate`, `tune` (--respect-privacy) -----------

CHUNK = 5000
"""Users per Redis round trip when reading the states of an event file's people."""


async def _states(settings: Settings, users: list[str]) -> dict[str, PrivacyState]:
    client = client_for(settings)
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
        await close(client)


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
