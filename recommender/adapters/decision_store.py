"""Decisions made inside experiments, kept in Redis for the worker's attribution.

``<prefix>dec:<decision_id>`` holds the decision's JSON record
(:class:`~recommender.core.attribution.DecisionRecord`) and ``<prefix>udec:{tag}<user_id>`` is a
sorted set of the person's decision ids by decision time. Both expire after the attribution
window plus an hour; the sorted set is trimmed to that window on every write, so a person's
memory stays bounded. The API writes a record before it answers (one pipelined round trip,
only for answers inside an experiment); records never change afterwards, which is what makes
the worker's attribution replay-safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from recommender.adapters.keys import decision_key, decisions_key
from recommender.adapters.redis_client import RedisClient
from recommender.core.attribution import DecisionRecord
from recommender.core.events import OFFER_EVENTS, Event

KEEP_MARGIN_S = 3600.0


class DecisionStore:
    """Decision records under ``prefix``, kept ``window_s`` + an hour."""

    def __init__(self, client: RedisClient, prefix: str, window_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.window_s = window_s
        self.ttl_s = int(window_s + KEEP_MARGIN_S)

    def record_key(self, decision_id: str) -> str:
        return decision_key(self.prefix, decision_id)

    def user_key(self, user_id: str) -> str:
        return decisions_key(self.prefix, user_id)

    async def put_many(self, records: Sequence[DecisionRecord]) -> None:
        """Store records (one round trip)."""
        if not records:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for r in records:
                pipe.set(self.record_key(r.decision_id), r.to_json(), ex=self.ttl_s)
                user = self.user_key(r.user_id)
                pipe.zadd(user, {r.decision_id: r.ts})
                pipe.zremrangebyscore(user, "-inf", r.ts - self.window_s - KEEP_MARGIN_S)
                pipe.expire(user, self.ttl_s)
            await pipe.execute()

    async def for_events(
        self, events: Iterable[Event]
    ) -> tuple[dict[str, DecisionRecord], dict[str, list[DecisionRecord]]]:
        """The records the events need: by decision id (offer events naming one) and by person
        (people with a cart or purchase, or an offer event naming no decision), in three round
        trips at most."""
        events = list(events)
        named = {e.decision_id for e in events if e.decision_id}
        buyers = sorted(
            {
                e.user_id
                for e in events
                if (e.type in ("add_to_cart", "purchase") and e.item_id)
                or (e.type in OFFER_EVENTS and e.decision_id is None)
            }
        )
        ids_of: dict[str, list[str]] = {}
        # Most people of a batch were never served a decision: one EXISTS over all of them
        # first spares a command each (redis-py's per-command cost, see redis_store).
        if buyers and await self.client.exists(*(self.user_key(u) for u in buyers)):
            async with self.client.pipeline(transaction=False) as pipe:
                for user in buyers:
                    pipe.zrange(self.user_key(user), 0, -1)
                lists = await pipe.execute()
            ids_of = {u: [_text(i) for i in ids] for u, ids in zip(buyers, lists, strict=True)}
        wanted = sorted(named | {i for ids in ids_of.values() for i in ids})
        records: dict[str, DecisionRecord] = {}
        if wanted:
            async with self.client.pipeline(transaction=False) as pipe:
                for decision_id in wanted:  # GETs, not MGET: one slot per key on a cluster
                    pipe.get(self.record_key(decision_id))
                values = await pipe.execute()
            for decision_id, value in zip(wanted, values, strict=True):
                if value is not None:
                    records[decision_id] = DecisionRecord.from_json(value)
        by_user = {
            user: [records[i] for i in ids if i in records and records[i].user_id == user]
            for user, ids in ids_of.items()
        }
        return records, by_user


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
