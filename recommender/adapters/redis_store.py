"""Profiles in Redis: one hash per user, written atomically behind an offset fence.

All profile math happens in Python (:mod:`recommender.core.profile`) and the hash layout is in
:mod:`recommender.adapters.codec`; the Lua script below is a thin applier: it replaces a user's
hash only if the stored fence (``_pos``) still equals the one the worker read, so two writers
(e.g. during a rebalance) can never interleave half-updates, and a conflict is reported back
instead of lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from redis.exceptions import RedisError

from recommender.adapters.codec import (
    encode_fields,
    lua,
    position_token,
    profile_from_hash,
    profile_key,
    profile_to_hash,
)
from recommender.adapters.keys import scan_pattern, user_of
from recommender.adapters.redis_client import RedisClient, connect, register_script
from recommender.core.errors import ConfigError
from recommender.core.profile import Position, Profile

# KEYS[1] profile key; ARGV[1] expected fence ('' for a new profile); ARGV[2] TTL in ms;
# ARGV[3] the new hash as ONE JSON array of strings [field, value, field, value, ...] (see
# :func:`~recommender.adapters.codec.encode_fields`). Returns 1 when written, 0 when the fence
# moved.
#
# One JSON argument instead of ~2 per field: packing hundreds of arguments per user was most of
# the worker's client-side time in redis-py. The array keeps the pairs in profile_to_hash
# order, so the HSETs (chunked to stay far below Lua's unpack limit) build the same hash as one
# HSET of them.
REPLACE_IF_FENCE = lua(
    """
local current = redis.call('HGET', KEYS[1], '$position_field') or ''
if current ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local kv = cjson.decode(ARGV[3])
local n = #kv
for i = 1, n, 1000 do
  redis.call('HSET', KEYS[1], unpack(kv, i, math.min(i + 999, n)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

FenceUpdate = tuple[str, Position | None, Profile]
"""(user_id, the profile's fence as read before the update, the updated profile)."""


class ProfileStore:
    """Reads and writes user profiles under ``<prefix>profile:{tag}<user_id>``."""

    def __init__(self, client: RedisClient, prefix: str, ttl_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._replace = register_script(client, REPLACE_IF_FENCE)

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
        mapping = await self.client.hgetall(self.key(user_id))
        return profile_from_hash(mapping) if mapping else None

    async def get_many(self, user_ids: Sequence[str]) -> list[Profile | None]:
        """Profiles of many users in one round trip, None for a user without one (as ``get``)."""
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hgetall(self.key(user_id))
            results = await pipe.execute()
        return [profile_from_hash(m) if m else None for m in results]

    async def user_ids(self) -> list[str]:
        """Every user with a stored profile (a SCAN of the prefix: for tests and tools only)."""
        keys = self.client.scan_iter(match=scan_pattern(self.prefix, "profile"), count=1000)
        users = [user_of(self.prefix, "profile", key.decode()) async for key in keys]
        return sorted(user for user in users if user is not None)

    async def put_many(self, updates: Iterable[FenceUpdate]) -> list[str]:
        """Write (user_id, fence read before the update, new profile) in one round trip.

        The fence is the :attr:`~recommender.core.profile.Profile.position` the profile had
        when read (None for a user without a profile). Returns the users whose fence moved in
        between; their update was not written and must be recomputed from a fresh read.
        """
        batch = list(updates)
        if not batch:
            return []
        ttl_ms = self.ttl_ms
        async with self.client.pipeline(transaction=False) as pipe:
            for user_id, fence, profile in batch:
                args: list[str | int | bytes] = [
                    position_token(fence),
                    ttl_ms,
                    encode_fields(profile_to_hash(profile)),
                ]
                await self._replace(keys=[self.key(user_id)], args=args, client=pipe)
            results = await pipe.execute()
        return [user for (user, _, _), ok in zip(batch, results, strict=True) if not ok]


__all__ = ["FenceUpdate", "ProfileStore", "connect"]
