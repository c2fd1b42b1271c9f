"""Aggregate feedback math: increments, per-partition fences, stats from counter totals."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.events import Event
from recommender.core.feedback import (
    CounterKey,
    ItemRating,
    OfferStats,
    increments,
    item_ratings,
    offer_counters,
    offer_stats,
    partition_update,
    rating_counters,
)

T = 1_750_000_000.0


def ev(kind: str, **fields: Any) -> Event:
    return Event(user_id="u1", type=kind, **fields).with_ts(T)


EVENTS = [
    ev("impression", offer_id="O1", channel="web"),
    ev("impression", offer_id="O1", channel="ad"),
    ev("click", offer_id="O1"),
    ev("dismiss", offer_id="O:2"),
    ev("review", item_id="SKU-1", rating=5),
    ev("review", item_id="SKU-1", rating=2),
    ev("review", item_id="SKU-2"),  # no rating: not counted
    ev("page_view", item_id="SKU-1"),
    ev("purchase", item_id="SKU-1"),
]
"""Offer and review events (and some that count nothing), in order."""


def test_increments_exact() -> None:
    assert increments(EVENTS) == {
        CounterKey("impressions", "O1"): 2,
        CounterKey("clicks", "O1"): 1,
        CounterKey("dismissals", "O:2"): 1,
        CounterKey("ratings", "SKU-1"): 2,
        CounterKey("rating_sum", "SKU-1"): 7,
    }
    assert offer_counters("O1") == (
        CounterKey("impressions", "O1"),
        CounterKey("clicks", "O1"),
        CounterKey("dismissals", "O1"),
    )
    assert rating_counters("SKU-1") == (
        CounterKey("ratings", "SKU-1"),
        CounterKey("rating_sum", "SKU-1"),
    )


def test_stats_from_counter_totals() -> None:
    o1, o2 = offer_counters("O1"), offer_counters("O2")
    totals = {o1[0]: 5, o1[1]: 1, o1[2]: 1, o2[2]: 4}
    stats = offer_stats(["O1", "O2"], totals)
    assert stats == {"O1": OfferStats(5, 1, 1), "O2": OfferStats(0, 0, 4)}
    assert stats["O1"].click_rate == 0.2 and stats["O2"].click_rate is None
    assert offer_stats(["O1"], {}) == {"O1": OfferStats()}
    count, total = rating_counters("A")
    ratings = item_ratings(["A", "B"], {count: 3, total: 12})
    assert ratings == {"A": ItemRating(3, 4.0), "B": ItemRating(0, 0.0)}


def test_partition_update_counts_only_messages_after_the_fence() -> None:
    click = ev("click", offer_id="O1")
    messages = [(10, click), (11, None), (12, click), (13, click)]
    assert partition_update(2, None, messages) is not None
    first = partition_update(2, None, messages)
    assert first is not None
    assert (first.partition, first.expected, first.last_offset) == (2, None, 13)
    assert first.increments == {CounterKey("clicks", "O1"): 3}
    # A redelivery overlapping the counted messages adds only the new ones.
    overlap = partition_update(2, 11, messages + [(14, click)])
    assert overlap is not None
    assert (overlap.expected, overlap.last_offset, dict(overlap.increments)) == (
        11,
        14,
        {CounterKey("clicks", "O1"): 3},
    )
    # Fully counted already: nothing to write. A dead letter still moves the fence.
    assert partition_update(2, 13, messages) is None
    only_letter = partition_update(2, 13, [(14, None)])
    assert only_letter is not None and (only_letter.last_offset, only_letter.increments) == (14, {})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["impression", "click", "dismiss", "review", "letter"]),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.tuples(st.integers(0, 40), st.integers(1, 40)), min_size=1, max_size=12),
)
def test_any_redelivery_pattern_counts_every_message_once(
    kinds: list[str], deliveries: list[tuple[int, int]]
) -> None:
    """Batches start anywhere at or before the fence (Kafka redelivers from the last commit)."""
    messages: list[tuple[int, Event | None]] = []
    for offset, kind in enumerate(kinds):
        if kind == "letter":
            messages.append((offset, None))
        elif kind == "review":
            messages.append((offset, ev("review", item_id="I", rating=1 + offset % 5)))
        else:
            messages.append((offset, ev(kind, offer_id="O")))
    counters: dict[CounterKey, int] = {}
    fence: int | None = None
    for start, length in deliveries + [(0, len(messages))]:  # always end with a full replay
        begin = min(start, 0 if fence is None else fence + 1)  # never skips unread messages
        update = partition_update(0, fence, messages[begin : begin + length])
        if update is None:
            continue
        assert update.expected == fence
        for name, n in update.increments.items():
            counters[name] = counters.get(name, 0) + n
        fence = update.last_offset
    assert fence == len(messages) - 1
    want = increments([e for _, e in messages if e is not None])
    assert counters == want
