"""Offer statistics and item ratings in Redis: one counter hash per Kafka partition.

``<prefix>agg:{p<partition>}`` holds the integer counters of :mod:`recommender.core.feedback` for
the events of that partition, and ``_off``, the offset of the last message counted (field names
in :mod:`recommender.adapters.codec`). The worker reads ``_off`` together with the batch's
profiles, computes the increments of the newer messages in Python, and writes them with one
call of a thin Lua script per partition per batch that adds them only if ``_off`` is still what
it read (and then moves it to the batch's last offset). A redelivered or overlapping batch
therefore adds exactly its new messages, a concurrent writer of the same partition is detected
instead of double counted, and the counters are as replay-safe as the profiles. Each counter
belongs to one partition, so nothing needs a cross-key operation (Redis Cluster shards the
hashes freely; a per-partition key added later shares the partition's hash tag, see
:mod:`recommender.adapters.keys`). Readers sum the partitions (a pipeline of one HMGET per
partition, which the cluster client sends to each node at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from recommender.adapters.codec import (
    OFFSET_FIELD,
    counter_field,
    counters_key,
    lua,
    offset_token,
    parse_offset,
    sum_counters,
)
from recommender.adapters.redis_client import RedisClient, register_script
from recommender.core.attribution import ArmFigures, arm_counters, arm_figures
from recommender.core.feedback import (
    CounterKey,
    ItemRating,
    OfferStats,
    PartitionUpdate,
    item_ratings,
    offer_counters,
    offer_stats,
    rating_counters,
)

RATINGS_TTL_S = 5.0
"""How long the API reuses an item's rating aggregate before reading it again (a stale one
is served for as long again while a background read refreshes it: :class:`RatingCache`)."""

logger = logging.getLogger("zmot.api")

RATINGS_CACHE_MAX = 100_000
"""Most items whose ratings :class:`RatingCache` holds; beyond it, it starts afresh."""

# KEYS[1] partition hash; ARGV[1] expected _off ('' when never written); ARGV[2] new _off;
# ARGV[3..] field, increment pairs. Returns 1 when added, 0 when _off had moved.
ADD_IF_FENCE = lua(
    """
local current = redis.call('HGET', KEYS[1], '$offset_field') or ''
if current ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], '$offset_field', ARGV[2])
return 1
"""
)


class FeedbackStore:
    """Per-partition feedback counters under ``<prefix>agg:{p<partition>}``.

    ``partitions`` is the partition count of the events topic (``ZMOT_TOPIC_PARTITIONS``):
    readers sum partitions ``0 .. partitions - 1``.
    """

    def __init__(self, client: RedisClient, prefix: str, partitions: int) -> None:
        self.client = client
        self.prefix = prefix
        self.partitions = partitions
        self._add = register_script(client, ADD_IF_FENCE)

    def key(self, partition: int) -> str:
        return counters_key(self.prefix, partition)

    # --- reads (API) ----------------------------------------------------------------

    async def offer_stats(self, offer_ids: Sequence[str]) -> dict[str, OfferStats]:
        """Impressions, clicks and dismissals of each offer over all users, in one round trip.

        Every requested id is in the answer (zeros for an offer never seen).
        """
        ids = list(dict.fromkeys(offer_ids))
        keys = [key for offer_id in ids for key in offer_counters(offer_id)]
        return offer_stats(ids, await self._totals(keys))

    async def ratings(self, item_ids: Sequence[str]) -> dict[str, ItemRating]:
        """Rating count and mean of each item over all users, in one round trip."""
        ids = list(dict.fromkeys(item_ids))
        keys = [key for item_id in ids for key in rating_counters(item_id)]
        return item_ratings(ids, await self._totals(keys))

    async def arm_figures(self, experiment: str, arms: Sequence[str]) -> list[ArmFigures]:
        """Each arm's attribution counters over all partitions (one round trip)."""
        keys = [key for arm in arms for key in arm_counters(experiment, arm)]
        totals = await self._totals(keys)
        return [
            arm_figures(arm, {k.kind: totals[k] for k in arm_counters(experiment, arm)})
            for arm in arms
        ]

    async def _totals(self, keys: list[CounterKey]) -> dict[CounterKey, int]:
        """The counters summed over all partitions (one HMGET per partition, one round trip)."""
        if not keys:
            return {}
        fields = [counter_field(key) for key in keys]
        async with self.client.pipeline(transaction=False) as pipe:
            for partition in range(self.partitions):
                pipe.hmget(self.key(partition), fields)
            results: list[list[Any]] = await pipe.execute()
        return sum_counters(keys, results)

    # --- writes (worker) ------------------------------------------------------------

    def queue_offsets(self, pipe: Any, partitions: Iterable[int]) -> None:
        """Queue the reads of each partition's fence on ``pipe`` (decode with ``parse_offset``)."""
        for partition in partitions:
            pipe.hget(self.key(partition), OFFSET_FIELD)

    async def queue_update(self, pipe: Any, update: PartitionUpdate) -> None:
        """Queue one fenced add on ``pipe``; its result is 1 when written, 0 on a moved fence."""
        args: list[str | int] = [offset_token(update.expected), offset_token(update.last_offset)]
        for key, increment in update.increments.items():
            args.extend((counter_field(key), increment))
        await self._add(keys=[self.key(update.partition)], args=args, client=pipe)

    async def offsets(self, partitions: Sequence[int]) -> dict[int, int | None]:
        """The last counted offset of each partition (None when never written)."""
        async with self.client.pipeline(transaction=False) as pipe:
            self.queue_offsets(pipe, partitions)
            values = await pipe.execute()
        return {p: parse_offset(v) for p, v in zip(partitions, values, strict=True)}

    async def apply(self, updates: Sequence[PartitionUpdate]) -> list[int]:
        """Write fenced updates in one round trip; the partitions whose fence had moved."""
        if not updates:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for update in updates:
                await self.queue_update(pipe, update)
            results = await pipe.execute()
        return [u.partition for u, ok in zip(updates, results, strict=True) if not ok]


__all__ = ["FeedbackStore", "ItemRating", "OfferStats"]


class RatingCache:
    """Item ratings through an in-process cache in front of :class:`FeedbackStore`.

    The API adds social proof ("rated 4.6 by 120 buyers") to every personalised answer. Reading
    the aggregates for each request was a second Redis round trip after the profile read, as
    costly as that read (a pipeline of one HMGET per partition, see BENCHMARKS.md). Ratings
    move slowly, so an item's aggregate is served for ``ttl_s`` seconds after it was read.
    Past that it is still served, for at most another ``ttl_s``, while one background read
    refreshes every item gone stale (stale-while-revalidate): a busy API reads ratings about
    once per ``ttl_s`` instead of on every request that meets an expired item. Items never
    read, or read more than ``2 * ttl_s`` ago, are read before answering (in one round trip,
    as :meth:`FeedbackStore.ratings`, which raises on a failed read; such a read caches
    nothing). So an answer's rating is at most ``2 * ttl_s`` old. A failed background read
    keeps the old values until they age out.
    """

    def __init__(
        self,
        store: FeedbackStore,
        ttl_s: float = RATINGS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock
        self._cached: dict[str, tuple[float, ItemRating]] = {}
        self._refresh: asyncio.Task[None] | None = None

    async def ratings(self, item_ids: Sequence[str]) -> dict[str, ItemRating]:
        """Rating count and mean of each item over all users, at most ``2 * ttl_s`` old."""
        now = self.clock()
        out, missing = self._lookup(item_ids, now)
        if missing:
            fresh = await self.store.ratings(missing)
            self._keep(fresh, now)
            out.update(fresh)
        return out

    def cached(self, item_ids: Sequence[str]) -> dict[str, ItemRating] | None:
        """As :meth:`ratings` when every item is in the cache (no wait, no deadline to keep:
        the hot path of a busy API), else None (call :meth:`ratings`)."""
        out, missing = self._lookup(item_ids, self.clock())
        return None if missing else out

    def _lookup(
        self, item_ids: Sequence[str], now: float
    ) -> tuple[dict[str, ItemRating], list[str]]:
        """The cached ratings young enough to serve and the items to read now; starts the
        background read when some served ones are stale."""
        out: dict[str, ItemRating] = {}
        missing: list[str] = []
        stale = False
        for item_id in item_ids:
            hit = self._cached.get(item_id)
            if hit is None or now - hit[0] >= 2 * self.ttl_s:
                missing.append(item_id)
                continue
            out[item_id] = hit[1]
            stale = stale or now - hit[0] >= self.ttl_s
        if stale and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._refresh_stale())
        return out, missing

    async def _refresh_stale(self) -> None:
        """Read again every cached item older than ``ttl_s`` (one round trip)."""
        started = self.clock()
        items = [i for i, (at, _) in self._cached.items() if started - at >= self.ttl_s]
        try:
            fresh = await self.store.ratings(items)
        except Exception as exc:  # a background read: the stale values age out instead
            logger.debug("background read of %d item ratings failed: %r", len(items), exc)
            return
        self._keep(fresh, started)

    def _keep(self, fresh: dict[str, ItemRating], read_at: float) -> None:
        for item_id, rating in fresh.items():
            self._cached[item_id] = (read_at, rating)
        if len(self._cached) > RATINGS_CACHE_MAX:  # start afresh with what was just read
            self._cached = {item_id: (read_at, rating) for item_id, rating in fresh.items()}

    async def close(self) -> None:
        """Cancel a background read in flight (at shutdown)."""
        task, self._refresh = self._refresh, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
