"""The shared feature vocabulary: feature name -> small integer id, kept in Redis.

A compact profile (:func:`~recommender.adapters.codec.profile_to_compact`) stores each
feature, item and offer name as an id of this vocabulary instead of its text: 2-3 bytes instead
of about 14. Ids are given once and never change or get reused, so every process keeps what
it has seen in memory for good (a cache that cannot go stale) and only asks Redis about names
or ids it has not met yet:

- the writer (the worker) calls :meth:`Vocabulary.assign` for the names of a batch that have
  no id in its cache: ONE Lua script gives each new name the next id atomically, so two
  workers meeting the same new name at once get the same id;
- a reader meeting an unknown id calls :meth:`Vocabulary.load` (one ``HMGET``).

Redis: two hashes under ``P vocab:{vocab}`` (:func:`~recommender.adapters.keys.vocab_keys`),
name -> id and id -> name, with a hash tag of their own, so on a Redis Cluster the script runs
on one slot and the per-user scripts never touch them (a separate call, before the profile
writes of a batch). Neither hash expires: a profile cannot be read without the ids it names,
so Redis's ``maxmemory-policy`` must not evict them (``noeviction`` or a ``volatile-*``
policy; profiles carry a TTL, the vocabulary none).

What goes in: only names that are not personal data (:func:`~recommender.adapters.codec.
is_shareable`): item ids, categories, brands, event kinds, offer ids. Search text (``q:`` and
``qp:`` features) stays inline in the person's own profile, so an erasure removes it (the
vocabulary outlives every person: SECURITY.md). At most ``limit`` names: beyond it, new names
are kept inline too, so a client inventing item ids cannot grow it without bound.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from recommender.adapters.keys import vocab_keys
from recommender.adapters.redis_client import RedisClient, register_script

VOCAB_LIMIT = 16_000_000
"""Most names in one vocabulary (ids stay below 2**24: 3 bytes each in a profile)."""

# KEYS: names hash, ids hash; ARGV[1] the limit, ARGV[2..] names. Returns one id per name,
# 0 where the vocabulary is full. HLEN of the names hash is the last id given (ids start at
# 1 and are never removed), so no separate counter can drift from the hashes.
ASSIGN = """
local names, ids = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  local name = ARGV[i]
  local id = redis.call('HGET', names, name)
  if id then
    out[#out + 1] = tonumber(id)
  else
    local n = redis.call('HLEN', names)
    if n < limit then
      redis.call('HSET', names, name, n + 1)
      redis.call('HSET', ids, n + 1, name)
      out[#out + 1] = n + 1
    else
      out[#out + 1] = 0
    end
  end
end
return out
"""

_CHUNK = 1000


class UnknownVocabularyIdError(LookupError):
    """A profile names vocabulary ids Redis does not hold (the vocabulary key was lost)."""


class Vocabulary:
    """The vocabulary under one key prefix, as far as this process has met it."""

    def __init__(self, client: RedisClient, prefix: str, limit: int = VOCAB_LIMIT) -> None:
        self.client = client
        self.names_key, self.ids_key = vocab_keys(prefix)
        self.limit = limit
        self.ids: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.full = False
        self.inline: dict[str, bytes] = {}
        self.shared_text: frozenset[str] = frozenset()
        self._assign = register_script(client, ASSIGN)

    def _learn(self, name: str, ident: int) -> None:
        self.ids[name] = ident
        self.names[ident] = name

    async def assign(self, names: Iterable[str]) -> None:
        """Give every name in ``names`` an id (the ones it has keep theirs); once the
        vocabulary is full, :attr:`full` is set and the rest stay without."""
        todo = [n for n in dict.fromkeys(names) if n not in self.ids]
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            got = await self._assign(keys=[self.names_key, self.ids_key], args=[self.limit, *chunk])
            for name, ident in zip(chunk, got, strict=True):
                if ident:
                    self._learn(name, int(ident))
                else:
                    self.full = True

    async def load(self, ids: Iterable[int]) -> None:
        """Learn the names of ``ids``; :class:`UnknownVocabularyIdError` for any Redis lacks."""
        todo = sorted({i for i in ids if i not in self.names})
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            got = await self.client.hmget(self.ids_key, chunk)
            lost = [i for i, name in zip(chunk, got, strict=True) if name is None]
            if lost:
                raise UnknownVocabularyIdError(
                    f"vocabulary ids {lost[:5]} are not in {self.ids_key}: the vocabulary was "
                    "deleted or evicted (keep Redis from evicting keys without a TTL)"
                )
            for ident, name in zip(chunk, got, strict=True):
                self._learn(name.decode() if isinstance(name, bytes) else str(name), ident)


_SHARED: weakref.WeakKeyDictionary[Any, dict[str, Vocabulary]] = weakref.WeakKeyDictionary()


def vocabulary(client: RedisClient, prefix: str) -> Vocabulary:
    """The one :class:`Vocabulary` of ``prefix`` on ``client`` in this process (every store
    and reader of that client shares its cache)."""
    per_client = _SHARED.setdefault(client, {})
    found = per_client.get(prefix)
    if found is None:
        found = per_client[prefix] = Vocabulary(client, prefix)
    return found


__all__ = ["ASSIGN", "VOCAB_LIMIT", "UnknownVocabularyIdError", "Vocabulary", "vocabulary"]
