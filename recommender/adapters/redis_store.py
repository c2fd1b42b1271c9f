"""Profiles in Redis: one packed value per user, written atomically behind an offset fence.

All profile math happens in Python (:mod:`recommender.core.profile`) and the stored form is in
:mod:`recommender.adapters.codec`; the Lua script below is a thin applier: it replaces a
profile only if the stored fence (the token in front of the value) still equals the one the
worker read, so two writers (e.g. during a rebalance) can never interleave half-updates, and
a conflict is reported back instead of lost.

A batch costs a constant number of commands, not a few per user: redis-py spends ~20-30 us of
client CPU per command (packing, one reply read each), which was most of the worker's time.
Reads are one ``MGET`` of the profiles (with an ``EXISTS`` beside it that reveals profiles still
stored in the old hash form, read then with ``HGETALL``); writes are one call of the script
for the keys of one Redis Cluster slot (:func:`slot_groups`), at most :data:`WRITE_CHUNK`
profiles (and about :data:`WRITE_CHUNK_BYTES`) per call and per round trip
(:func:`write_rounds`): on one Redis a batch of up to that many profiles is one call, a bigger
one a few calls, each in its own round trip so that Redis serves other clients (the API's
reads) in between instead of running one long script; on a cluster each call stays within a
slot, as cluster scripts must.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError

from recommender.adapters.codec import (
    PACK_LEVEL,
    PACKED_RAW,
    PACKED_ZLIB,
    UnassignedNames,
    UnknownIds,
    VocabularyView,
    lua,
    narrowed,
    position_token,
    profile_from_hash,
    profile_from_value,
    profile_key,
    profile_to_compact,
    split_value,
)
from recommender.adapters.keys import prefix_of_profile_key, scan_pattern, user_of
from recommender.adapters.redis_client import (
    RedisClient,
    connect,
    is_cluster,
    queue_mget,
    register_script,
)
from recommender.adapters.vocabulary import Vocabulary, vocabulary
from recommender.core.errors import ConfigError
from recommender.core.profile import Position, Profile

# KEYS: profile keys; ARGV[1] TTL in ms; ARGV[2] the expected fence of each key ('.' for a new
# profile), space-separated; ARGV[3] the byte length of each new value, space-separated;
# ARGV[4] the new values one after the other. Returns the 1-based indices of the keys whose
# fence had moved (not written).
#
# Four arguments whatever the number of keys: redis-py packs each argument in Python, and two
# per profile were a tenth of the worker's time. The fence is the value's prefix up to '|'
# (GETRANGE reads only the head); a key still in the old hash form keeps it in its '_pos'
# field, and is replaced by the packed value.
REPLACE_IF_FENCE = lua(
    """
local moved = {}
local fences, lengths, values = ARGV[2], ARGV[3], ARGV[4]
local i, at, fence_at, length_at = 0, 1, 1, 1
while true do
  local fence_end = string.find(fences, ' ', fence_at, true)
  local length_end = string.find(lengths, ' ', length_at, true)
  local expected = string.sub(fences, fence_at, (fence_end or 0) - 1)
  local size = tonumber(string.sub(lengths, length_at, (length_end or 0) - 1))
  i = i + 1
  local key = KEYS[i]
  if expected == '.' then expected = '' end
  local head = redis.pcall('GETRANGE', key, 0, 63)
  local current
  if type(head) == 'table' then
    current = redis.call('HGET', key, '$position_field') or ''
  else
    current = string.match(head, '^([^|]*)|') or ''
  end
  if current == expected then
    redis.call('SET', key, string.sub(values, at, at + size - 1), 'PX', ARGV[1])
  else
    moved[#moved + 1] = i
  end
  at = at + size
  if not fence_end then break end
  fence_at, length_at = fence_end + 1, length_end + 1
end
return moved
"""
)

WRITE_CHUNK = 1000
"""Most profiles one round trip of :meth:`ProfileStore.put_many` writes (one script call on one
Redis): Redis runs a script to its end before any other command, ~5-8 us per profile of 64
features here, so a call of 1000 holds it ~5-8 ms (BENCHMARKS.md, "Issue 12, worker: writes in
chunks")."""

WRITE_CHUNK_BYTES = 1 << 20
"""Most bytes of profile values per round trip of :meth:`ProfileStore.put_many` (a round trip
holds at least one profile, however big): bigger profiles take as long to copy as more small
ones."""

INLINE_CACHE = 100_000
"""Most inline names (search words) whose encoded bytes a store keeps between batches."""

FenceUpdate = tuple[str, Position | None, Profile]
"""(user_id, the profile's fence as read before the update, the updated profile)."""


def slot_groups(client: Any, keys: Sequence[str]) -> list[list[int]]:
    """Indices of ``keys`` grouped so that each group may go to one multi-key command: all of
    them on one Redis, per hash slot on a Redis Cluster (in order of first appearance)."""
    if not is_cluster(client):
        return [list(range(len(keys)))] if keys else []
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(client.keyslot(key), []).append(i)
    return list(groups.values())


def write_rounds(
    groups: Sequence[Sequence[int]], sizes: Sequence[int], most: int, most_bytes: int
) -> list[list[list[int]]]:
    """``groups`` (indices, e.g. of one slot each) cut into round trips of script calls.

    Each round trip holds at most ``most`` indices and about ``most_bytes`` (``sizes[i]``
    each; a single index bigger than that goes alone); a group is split where a round trip
    fills, so each call holds indices of one group only. Order is kept.
    """
    rounds: list[list[list[int]]] = []
    calls: list[list[int]] = []
    call: list[int] = []
    count = size = 0
    for group in groups:
        for i in group:
            if count and (count >= most or size + sizes[i] > most_bytes):
                if call:
                    calls.append(call)
                rounds.append(calls)
                calls, call, count, size = [], [], 0, 0
            call.append(i)
            count += 1
            size += sizes[i]
        if call:
            calls.append(call)
            call = []
    if calls:
        rounds.append(calls)
    return rounds


Decoder = Callable[[str, bytes, VocabularyView], Profile]
"""decode(key, value, vocabulary) -> the profile of a packed value."""


async def read_profiles(
    client: Any,
    keys: Sequence[str],
    decode: Decoder | None = None,
) -> list[Profile | None]:
    """The profiles stored under ``keys`` (None where there is none), in one round trip.

    ``MGET`` returns nothing for a key holding another type: the ``EXISTS`` count beside it
    says whether some key still holds an old hash profile; those are then read with
    ``HGETALL`` (a second round trip, only until the store is migrated). ``decode(key,
    value, vocabulary)`` turns a packed value into its profile (default
    :func:`profile_from_value`). All ``keys`` are under one prefix (one vocabulary).
    """
    if not keys:
        return []
    if is_cluster(client):
        values = await client.mget_nonatomic(list(keys))
        existing = await client.exists(*keys)
        return await decode_profiles(client, keys, values, existing, decode)
    async with client.pipeline(transaction=False) as pipe:
        queue_profile_reads(pipe, keys)
        values, existing = await pipe.execute()
    return await decode_profiles(client, keys, values, existing, decode)


def queue_profile_reads(pipe: Any, keys: Sequence[str]) -> None:
    """Add the two commands of :func:`read_profiles` to a pipeline (not for a cluster, whose
    MGET must be split per slot: use :func:`read_profiles` there)."""
    queue_mget(pipe, keys)
    pipe.exists(*keys)


async def decode_profiles(
    client: Any,
    keys: Sequence[str],
    values: Sequence[bytes | None],
    existing: int,
    decode: Decoder | None = None,
    vocab: Vocabulary | None = None,
) -> list[Profile | None]:
    """The profiles from the replies of :func:`queue_profile_reads` (old hash forms read now;
    ``vocab``: as for :func:`decode_values`)."""
    found = await decode_values(client, keys, values, decode, vocab)
    if existing > len(keys) - found.count(None):
        missing = [i for i, v in enumerate(values) if v is None]
        for i, profile in zip(
            missing, await _read_legacy(client, [keys[i] for i in missing]), strict=True
        ):
            found[i] = profile
    return found


async def decode_values(
    client: Any,
    keys: Sequence[str],
    values: Sequence[bytes | None],
    decode: Decoder | None = None,
    vocab: Vocabulary | None = None,
) -> list[Profile | None]:
    """Decode packed values of ``keys`` (None stays None); the vocabulary ids a compact
    value names that this process has not met are loaded from Redis in one round trip.
    ``vocab``: the keys' vocabulary (:func:`vocabulary` of ``client`` and the
    :func:`prefix_of_profile_key` of every key), when the caller holds it."""
    first = next((k for k, v in zip(keys, values, strict=True) if v is not None), None)
    if first is None:
        return [None] * len(values)
    if vocab is None:
        vocab = vocabulary(client, prefix_of_profile_key(first))
    one = (lambda _k, v, w: profile_from_value(v, w)) if decode is None else decode
    out: list[Profile | None] = []
    retry: list[int] = []
    unknown: set[int] = set()
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        if value is None:
            out.append(None)
            continue
        try:
            out.append(one(key, value, vocab))
        except UnknownIds as exc:
            out.append(None)
            retry.append(i)
            unknown |= exc.ids
    if retry:
        await vocab.load(unknown)
        for i in retry:
            out[i] = one(keys[i], values[i], vocab)  # type: ignore[arg-type]  # not None here
    return out


async def _read_legacy(client: Any, keys: list[str]) -> list[Profile | None]:
    """Profiles among ``keys`` still stored as hashes (or written packed since the MGET)."""
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        results = await pipe.execute(raise_on_error=False)
    out: list[Profile | None] = []
    for key, result in zip(keys, results, strict=True):
        if isinstance(result, RedisError):  # WRONGTYPE: packed since the MGET
            (profile,) = await decode_values(client, [key], [await client.get(key)])
            out.append(profile)
        else:
            out.append(profile_from_hash(result) if result else None)
    return out


class ProfileStore:
    """Reads and writes user profiles under ``<prefix>profile:{tag}<user_id>``.

    Profiles are written compact (:func:`~recommender.adapters.codec.profile_to_compact`:
    names as ids of the shared :mod:`~recommender.adapters.vocabulary` of ``prefix``, weights
    in single precision); ``pack_level`` > 0 deflates them too (see
    :data:`~recommender.adapters.codec.PACK_LEVEL`): Redis memory against worker CPU. Values
    of the formats before are read as well and replaced by the next write.

    ``shared_text``: the search features the vocabulary may hold (the worker passes
    :func:`~recommender.core.features.catalog_search_features` of its catalog; default none,
    every search feature inline).

    ``cache_size`` > 0 (the worker's ``ZMOT_WORKER_PROFILE_CACHE``) keeps the profiles this
    store last wrote, each with the exact value written: a read that finds that very value
    in Redis hands the kept profile back instead of decoding it again (a user active across
    batches costs one decode, not one per batch). A value that differs in any byte (another
    worker wrote, an erasure, an expiry) is decoded as usual, so the cache can never serve
    what Redis does not hold. A profile read from it belongs to the caller (it is taken out;
    a written one goes back): callers that change what they read and write it back, as the
    worker does, are the only ones that should use it.
    """

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        ttl_s: float,
        pack_level: int = PACK_LEVEL,
        cache_size: int = 0,
        shared_text: frozenset[str] | None = None,
        write_chunk: int = WRITE_CHUNK,
        write_chunk_bytes: int = WRITE_CHUNK_BYTES,
    ) -> None:
        if write_chunk < 1 or write_chunk_bytes < 1:
            raise ValueError("write_chunk and write_chunk_bytes must be >= 1")
        self.client = client
        self.write_chunk = write_chunk
        self.write_chunk_bytes = write_chunk_bytes
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.pack_level = pack_level
        self.cache_size = cache_size
        self._cache: dict[str, tuple[bytes, Profile]] = {}
        self.cache_hits = 0
        self._replace = register_script(client, REPLACE_IF_FENCE)
        self.vocab: Vocabulary = vocabulary(client, prefix)
        if shared_text is not None:
            self.vocab.shared_text = shared_text
            self.vocab.inline.clear()

    def _decode(self, key: str, value: bytes, vocab: VocabularyView) -> Profile:
        kept = self._cache.pop(key, None)
        if kept is not None and kept[0] == value:
            self.cache_hits += 1
            return kept[1]
        return profile_from_value(value, vocab)

    async def encode_many(self, profiles: Sequence[Profile]) -> list[bytes]:
        """The compact values of ``profiles``; names new to this process are given their
        vocabulary ids first (one script call for the whole batch, only when there are)."""
        vocab, level = self.vocab, self.pack_level
        if len(vocab.inline) > INLINE_CACHE:
            vocab.inline.clear()
        values: list[bytes] = []
        pending: list[int] = []
        new_names: list[str] = []
        for i, profile in enumerate(profiles):
            try:
                values.append(profile_to_compact(profile, vocab, level))
            except UnassignedNames as exc:
                values.append(b"")
                pending.append(i)
                new_names += exc.names
        if pending:
            await vocab.assign(new_names)
            for i in pending:  # every shareable name has an id now, or the vocabulary is full
                values[i] = profile_to_compact(profiles[i], vocab, level)
        return values

    def key(self, user_id: str) -> str:
        return profile_key(self.prefix, user_id)

    async def check(self) -> None:
        """Fail fast with a clear message when Redis cannot be reached."""
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise ConfigError(f"Redis is not reachable ({exc}); check ZMOT_REDIS_URL") from exc

    async def get(self, user_id: str) -> Profile | None:
        """The stored profile, or None for a user without one (never seen, or expired)."""
        (profile,) = await self.get_many([user_id])
        return profile

    async def get_many(self, user_ids: Sequence[str]) -> list[Profile | None]:
        """Profiles of many users in one round trip, None for a user without one (as ``get``)."""
        keys = [self.key(u) for u in user_ids]
        return await read_profiles(self.client, keys, self._decode if self.cache_size else None)

    async def user_ids(self) -> list[str]:
        """Every user with a stored profile (a SCAN of the prefix: for tests and tools only)."""
        keys = self.client.scan_iter(match=scan_pattern(self.prefix, "profile"), count=1000)
        users = [user_of(self.prefix, "profile", key.decode()) async for key in keys]
        return sorted(user for user in users if user is not None)

    async def put_many(
        self, updates: Iterable[FenceUpdate], written: list[str] | None = None
    ) -> list[str]:
        """Write (user_id, fence read before the update, new profile); the users whose fence
        moved in between: their update was not written and must be recomputed from a fresh
        read.

        The fence is the :attr:`~recommender.core.profile.Profile.position` the profile had
        when read (None for a user without a profile). Up to :attr:`write_chunk` profiles
        (and :attr:`write_chunk_bytes`) go in one round trip, more in several, one after
        the other (:func:`write_rounds`). Each profile is written or not on its own, behind
        its own fence, so a failure between round trips leaves the earlier ones written and
        the later ones as they were: ``written``, when given, is extended with the users of
        each round trip once it is written, so that a caller knows after an error which
        updates are in Redis (and which, on a redelivery, the fence will skip).
        """
        batch = list(updates)
        if not batch:
            return []
        keys = [self.key(user_id) for user_id, _, _ in batch]
        values = await self.encode_many([profile for _, _, profile in batch])
        rounds = write_rounds(
            slot_groups(self.client, keys),
            [len(v) for v in values],
            self.write_chunk,
            self.write_chunk_bytes,
        )
        moved: list[int] = []
        for calls in rounds:
            async with self.client.pipeline(transaction=False) as pipe:
                for call in calls:
                    args: list[str | int | bytes] = [
                        self.ttl_ms,
                        " ".join([position_token(batch[i][1]) or "." for i in call]),
                        " ".join([str(len(values[i])) for i in call]),
                        b"".join([values[i] for i in call]),
                    ]
                    await self._replace(keys=[keys[i] for i in call], args=args, client=pipe)
                results = await pipe.execute()
            lost = {call[index - 1] for call, indices in zip(calls, results, strict=True)
                    for index in indices}  # fmt: skip
            done = [i for call in calls for i in call if i not in lost]
            if self.cache_size:
                self._keep((keys[i], values[i], batch[i][2]) for i in done)
            if written is not None:
                written.extend(batch[i][0] for i in done)
            moved.extend(lost)
        return [batch[i][0] for i in sorted(moved)]

    def _keep(self, written: Iterable[tuple[str, bytes, Profile]]) -> None:
        """Remember what was just written; the longest unread go first beyond the size."""
        cache = self._cache
        for key, value, profile in written:
            profile.weights = narrowed(profile.weights)  # as a read of the value gives them
            cache.pop(key, None)
            cache[key] = (value, profile)
        for _ in range(len(cache) - self.cache_size):
            del cache[next(iter(cache))]

    async def migrate(self, count: int = 500) -> int:
        """Rewrite every profile still stored in a format before the compact one (a hash,
        or a packed value of format ``B`` / ``Z``); how many were.

        Each rewrite goes through the fenced script, so a worker writing the same profile
        meanwhile wins and the rewrite of that one is simply skipped (the worker wrote it
        compact).
        """
        done = 0
        batch: list[str] = []

        async def flush() -> int:
            keys = [self.key(u) for u in batch]
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                values = await pipe.execute(raise_on_error=False)
            hashes = [i for i, v in enumerate(values) if isinstance(v, RedisError)]
            old = [
                i
                for i, v in enumerate(values)
                if isinstance(v, bytes) and split_value(v)[1][:1] in (PACKED_RAW, PACKED_ZLIB)
            ]
            profiles = await _read_legacy(self.client, [keys[i] for i in hashes])
            profiles += [profile_from_value(values[i]) for i in old]
            updates = [
                (batch[i], profile.position, profile)
                for i, profile in zip(hashes + old, profiles, strict=True)
                if profile is not None
            ]
            moved = await self.put_many(updates)
            batch.clear()
            return len(updates) - len(moved)

        pattern = scan_pattern(self.prefix, "profile")
        async for key in self.client.scan_iter(match=pattern, count=count):
            user = user_of(self.prefix, "profile", key.decode())
            if user is None:
                continue
            batch.append(user)
            if len(batch) >= count:
                done += await flush()
        if batch:
            done += await flush()
        return done


__all__ = [
    "WRITE_CHUNK",
    "FenceUpdate",
    "ProfileStore",
    "connect",
    "read_profiles",
    "slot_groups",
    "write_rounds",
]
