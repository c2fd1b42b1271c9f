"""Feedback aggregated over many users: offer statistics and item ratings (pure, no I/O).

Events of one Kafka partition add to that partition's counters only. The stored form is one
Redis hash per partition (:mod:`recommender.adapters.feedback_store`), whose fields are named
here:

=================  ======================================================
``i:<offer_id>``   impressions of the offer (any channel)
``c:<offer_id>``   clicks on it
``d:<offer_id>``   dismissals of it
``rn:<item_id>``   ratings given in ``review`` events of the item
``rs:<item_id>``   their sum (1-5 each)
``_off``           offset of the last message of the partition already counted
=================  ======================================================

Every counter is an integer, so adding is exact and the order of additions never matters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from recommender.core.events import Event

OFFSET_FIELD = "_off"

OFFER_COUNTERS: dict[str, str] = {"impression": "i", "click": "c", "dismiss": "d"}
"""Event type -> field tag of the per-offer counter it adds to."""


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


def offer_fields(offer_id: str) -> tuple[str, str, str]:
    """The impression, click and dismissal fields of ``offer_id``."""
    return f"i:{offer_id}", f"c:{offer_id}", f"d:{offer_id}"


def rating_fields(item_id: str) -> tuple[str, str]:
    """The rating count and rating sum fields of ``item_id``."""
    return f"rn:{item_id}", f"rs:{item_id}"


def increments(events: Iterable[Event]) -> dict[str, int]:
    """What ``events`` add to the aggregate counters: field -> increment (no zero entries)."""
    out: dict[str, int] = {}
    for event in events:
        tag = OFFER_COUNTERS.get(event.type)
        if tag is not None and event.offer_id is not None:
            name = f"{tag}:{event.offer_id}"
            out[name] = out.get(name, 0) + 1
        elif event.type == "review" and event.item_id is not None and event.rating is not None:
            count, total = rating_fields(event.item_id)
            out[count] = out.get(count, 0) + 1
            out[total] = out.get(total, 0) + event.rating
    return out


def _int(value: bytes | str | None) -> int:
    return 0 if value is None else int(value)


def offer_stats_from(
    offer_ids: Sequence[str], per_partition: Iterable[Sequence[bytes | str | None]]
) -> dict[str, OfferStats]:
    """Sum the partitions' values of ``offer_fields`` (in that order for each offer id)."""
    sums = [0] * (3 * len(offer_ids))
    for values in per_partition:
        for i, value in enumerate(values):
            sums[i] += _int(value)
    return {
        offer_id: OfferStats(sums[3 * k], sums[3 * k + 1], sums[3 * k + 2])
        for k, offer_id in enumerate(offer_ids)
    }


def ratings_from(
    item_ids: Sequence[str], per_partition: Iterable[Sequence[bytes | str | None]]
) -> dict[str, ItemRating]:
    """Sum the partitions' values of ``rating_fields`` (in that order for each item id)."""
    sums = [0] * (2 * len(item_ids))
    for values in per_partition:
        for i, value in enumerate(values):
            sums[i] += _int(value)
    out: dict[str, ItemRating] = {}
    for k, item_id in enumerate(item_ids):
        count, total = sums[2 * k], sums[2 * k + 1]
        out[item_id] = ItemRating(count, total / count if count else 0.0)
    return out


def offset_token(offset: int | None) -> str:
    """The stored ``_off`` value ('' for a partition never counted)."""
    return "" if offset is None else str(offset)


def parse_offset(value: bytes | str | None) -> int | None:
    """The last counted offset from a stored ``_off`` value (None when absent)."""
    if value is None or value in (b"", ""):
        return None
    return int(value)


@dataclass(frozen=True)
class PartitionUpdate:
    """What one batch adds to one partition's counters, behind that partition's fence.

    Written only if the stored ``_off`` still equals ``expected`` (what the batch read), then
    ``_off`` becomes ``last_offset``. ``increments`` hold only messages after ``expected``.
    """

    partition: int
    expected: int | None
    last_offset: int
    increments: Mapping[str, int]


def partition_update(
    partition: int,
    counted: int | None,
    messages: Iterable[tuple[int, Event | None]],
) -> PartitionUpdate | None:
    """The update of ``partition`` from a batch's (offset, event) pairs; None if nothing is new.

    ``counted`` is the stored ``_off``. Messages at or below it were counted by an earlier batch
    (a redelivery, which need not start or end where that batch did) and are skipped one by one,
    so an overlapping batch adds exactly its new messages. ``event`` None marks a message that
    adds nothing (a dead letter): it still moves the fence.
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
    return PartitionUpdate(partition, counted, last, increments(fresh))
