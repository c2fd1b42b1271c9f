"""Aggregate feedback math: increments, per-partition fences, sums over partitions."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.events import Event
from recommender.core.feedback import (
    ItemRating,
    OfferStats,
    increments,
    offer_fields,
    offer_stats_from,
    partition_update,
    rating_fields,
    ratings_from,
)

T = 1_750_000_000.0


def ev(kind: str, **fields: Any) -> Event:
    return Event(user_id="u1", type=kind, **fields).with_ts(T)


def test_increments_exact() -> None:
    events = [
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
    assert increments(events) == {
        "i:O1": 2,
        "c:O1": 1,
        "d:O:2": 1,
        "rn:SKU-1": 2,
        "rs:SKU-1": 7,
    }
    assert offer_fields("O1") == ("i:O1", "c:O1", "d:O1")
    assert rating_fields("SKU-1") == ("rn:SKU-1", "rs:SKU-1")


def test_sums_over_partitions() -> None:
    stats = offer_stats_from(
        ["O1", "O2"], [[b"2", b"1", None, None, None, None], [b"3", None, b"1", None, None, b"4"]]
    )
    assert stats == {"O1": OfferStats(5, 1, 1), "O2": OfferStats(0, 0, 4)}
    assert stats["O1"].click_rate == 0.2 and stats["O2"].click_rate is None
    assert offer_stats_from(["O1"], []) == {"O1": OfferStats()}
    ratings = ratings_from(["A", "B"], [[b"1", b"5", None, None], [b"2", b"7", None, None]])
    assert ratings == {"A": ItemRating(3, 4.0), "B": ItemRating(0, 0.0)}


def test_partition_update_counts_only_messages_after_the_fence() -> None:
    click = ev("click", offer_id="O1")
    messages = [(10, click), (11, None), (12, click), (13, click)]
    assert partition_update(2, None, messages) is not None
    first = partition_update(2, None, messages)
    assert first is not None
    assert (first.partition, first.expected, first.last_offset) == (2, None, 13)
    assert first.increments == {"c:O1": 3}
    # A redelivery overlapping the counted messages adds only the new ones.
    overlap = partition_update(2, 11, messages + [(14, click)])
    assert overlap is not None
    assert (overlap.expected, overlap.last_offset, dict(overlap.increments)) == (
        11,
        14,
        {"c:O1": 3},
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
    counters: dict[str, int] = {}
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
