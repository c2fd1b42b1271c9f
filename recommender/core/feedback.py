"""Feedback aggregated over many users: offer statistics and item ratings (pure, no I/O).

Events of one Kafka partition add to that partition's counters only, each behind that
partition's own offset fence (the offset of the last message counted), so a redelivered batch
counts nothing twice. A counter is named by a :class:`CounterKey`: what it counts and of which
offer or item. Every counter is an integer, so adding is exact and the order of additions never
matters. The stored form (one Redis hash per partition) is in :mod:`recommender.adapters.codec`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from recommender.core.events import Event

ARM_COUNTERS = (
    "arm_impressions",
    "arm_clicks",
    "arm_dismissals",
    "arm_carts",
    "arm_conversions",
    "arm_revenue",
    "arm_revenue_sq",
)
"""Counter kinds per experiment arm (:mod:`recommender.core.attribution`); revenue in cents,
and the sum of squared cents per conversion."""

COUNTER_KINDS = ("impressions", "clicks", "dismissals", "ratings", "rating_sum", *ARM_COUNTERS)
"""What a counter can count: offer impressions, clicks and dismissals; item ratings and their
sum (1-5 each); per experiment arm, what :mod:`recommender.core.attribution` attributes."""

OFFER_COUNTERS: dict[str, str] = {
    "impression": "impressions",
    "click": "clicks",
    "dismiss": "dismissals",
}
"""Event type -> kind of the per-offer counter it adds to."""


class CounterKey(NamedTuple):
    """One aggregate counter: its kind (:data:`COUNTER_KINDS`) and the offer or item id."""

    kind: str
    subject: str


@dataclass(frozen=True)
class OfferStats:
    """How often an offer was shown, clicked and dismissed, over all users."""

    impressions: int = 0
    clicks: int = 0
    dismissals: int = 0

    @property
    def click_rate(self) -> float | None:
        """Clicks per impression; None before the first impression."""
        return self.clicks / self.impressions if self.impressions else None


@dataclass(frozen=True)
class ItemRating:
    """How many ``review`` events rated the item, and their mean (0.0 when none did)."""

    count: int = 0
    mean: float = 0.0


def offer_counters(offer_id: str) -> tuple[CounterKey, CounterKey, CounterKey]:
    """The impression, click and dismissal counters of ``offer_id``."""
    return (
        CounterKey("impressions", offer_id),
        CounterKey("clicks", offer_id),
        CounterKey("dismissals", offer_id),
    )


def rating_counters(item_id: str) -> tuple[CounterKey, CounterKey]:
    """The rating count and rating sum counters of ``item_id``."""
    return CounterKey("ratings", item_id), CounterKey("rating_sum", item_id)


def increments(events: Iterable[Event]) -> dict[CounterKey, int]:
    """What ``events`` add to the aggregate counters: counter -> increment (no zero entries)."""
    out: dict[CounterKey, int] = {}
    for event in events:
        kind = OFFER_COUNTERS.get(event.type)
        if kind is not None and event.offer_id is not None:
            key = CounterKey(kind, event.offer_id)
            out[key] = out.get(key, 0) + 1
        elif event.type == "review" and event.item_id is not None and event.rating is not None:
            count, total = rating_counters(event.item_id)
            out[count] = out.get(count, 0) + 1
            out[total] = out.get(total, 0) + event.rating
    return out


def offer_stats(
    offer_ids: Sequence[str], totals: Mapping[CounterKey, int]
) -> dict[str, OfferStats]:
    """The stats of each offer from the counter totals (zeros for a counter not in them)."""
    out: dict[str, OfferStats] = {}
    for offer_id in offer_ids:
        shown, clicked, dismissed = (totals.get(key, 0) for key in offer_counters(offer_id))
        out[offer_id] = OfferStats(shown, clicked, dismissed)
    return out


def item_ratings(
    item_ids: Sequence[str], totals: Mapping[CounterKey, int]
) -> dict[str, ItemRating]:
    """The rating count and mean of each item from the counter totals."""
    out: dict[str, ItemRating] = {}
    for item_id in item_ids:
        count, total = (totals.get(key, 0) for key in rating_counters(item_id))
        out[item_id] = ItemRating(count, total / count if count else 0.0)
    return out


@dataclass(frozen=True)
class PartitionUpdate:
    """What one batch adds to one partition's counters, behind that partition's fence.

    Written only if the partition's stored fence still equals ``expected`` (what the batch
    read), then the fence becomes ``last_offset``. ``increments`` hold only messages after
    ``expected``.
    """

    partition: int
    expected: int | None
    last_offset: int
    increments: Mapping[CounterKey, int]


def partition_update(
    partition: int,
    counted: int | None,
    messages: Iterable[tuple[int, Event | None]],
    extra: Callable[[list[Event]], Mapping[CounterKey, int]] | None = None,
) -> PartitionUpdate | None:
    """The update of ``partition`` from a batch's (offset, event) pairs; None if nothing is new.

    ``counted`` is the partition's fence as read. Messages at or below it were counted by an
    earlier batch (a redelivery, which need not start or end where that batch did) and are
    skipped one by one, so an overlapping batch adds exactly its new messages. ``event`` None
    marks a message that adds nothing (a dead letter): it still moves the fence. ``extra``
    adds more counters computed from the same new events (e.g. per-arm attribution).
    """
    last: int | None = None
    fresh: list[Event] = []
    for offset, event in messages:
        if counted is not None and offset <= counted:
            continue
        last = offset if last is None else max(last, offset)
        if event is not None:
            fresh.append(event)
    if last is None:
        return None
    adds = increments(fresh)
    if extra is not None:
        for key, amount in extra(fresh).items():
            adds[key] = adds.get(key, 0) + amount
    return PartitionUpdate(partition, counted, last, adds)
