"""Co-visitation and session-kNN on tiny histories whose right neighbours are known."""

from __future__ import annotations

import pytest

from recommender.core.events import Event
from recommender.offline import neighbours
from recommender.offline.neighbours import (
    Covisitation,
    CovisitParams,
    SessionKnn,
    SessionKnnParams,
)

T0 = 1_760_000_000.0
HOUR = 3600.0


def views(user: str, items: str, start: float = T0, step: float = 60.0) -> list[Event]:
    """One page view per letter of ``items``, ``step`` seconds apart."""
    return [
        Event(user_id=user, type="page_view", item_id=item).with_ts(start + i * step)
        for i, item in enumerate(items)
    ]


def covisit_history() -> list[Event]:
    """A is always followed by B; C by D; E appears with F only far apart."""
    events: list[Event] = []
    for u in range(6):
        events += views(f"u{u}", "AB", start=T0 + u * HOUR)
        events += views(f"w{u}", "CD", start=T0 + u * HOUR)
        events += views(f"f{u}", "EXYZQRSTF", start=T0 + u * HOUR)  # F is 8 items after E
    events += views("odd", "AC")  # one shopper pairs A with C once
    return events


def test_covisit_ranks_the_item_that_always_follows_first() -> None:
    covisit = Covisitation(covisit_history())
    assert covisit(views("me", "A"))[0] == "B"
    assert covisit(views("me", "C"))[0] == "D"
    assert covisit(views("me", "A"))[:2] == ["B", "C"]


def test_covisit_weighs_the_newest_item_most() -> None:
    covisit = Covisitation(covisit_history())
    assert covisit(views("me", "CA"))[0] == "B"  # A is newest
    assert covisit(views("me", "AC"))[0] == "D"


def test_covisit_direction_and_window() -> None:
    events = covisit_history()
    symmetric = dict(Covisitation(events).neighbours("B"))
    directional = dict(Covisitation(events, params=CovisitParams(backward=0.0)).neighbours("B"))
    assert "A" in symmetric and "A" not in directional
    assert "F" not in dict(Covisitation(events).neighbours("E"))  # beyond the 5-item window
    wide = Covisitation(events, params=CovisitParams(window=8))
    assert "F" in dict(wide.neighbours("E"))


def test_covisit_counts_repeats_once_and_respects_the_time_gap() -> None:
    repeats = views("r", "AAAAAAB")  # collapsed: A then B, one pair
    assert dict(Covisitation(repeats).neighbours("A")) == {"B": 1.0}
    apart = views("p", "AB", step=2 * 24 * HOUR)
    assert Covisitation(apart).neighbours("A") == []


def test_covisit_knows_nothing_of_unseen_items() -> None:
    covisit = Covisitation(covisit_history())
    assert covisit(views("me", "?")) == []
    assert covisit([]) == []


def session_history() -> list[Event]:
    """Sessions {A,B,C} and {X,Y,Z} of many shoppers, and one session {A,X}."""
    events: list[Event] = []
    for u in range(5):
        events += views(f"abc{u}", "ABC", start=T0 + u * HOUR)
        events += views(f"xyz{u}", "XYZ", start=T0 + u * HOUR)
    events += views("mix", "AX", start=T0 + 9 * HOUR)
    return events


def test_session_knn_ranks_the_items_of_similar_sessions_first() -> None:
    knn = SessionKnn(session_history())
    ranked = knn(views("me", "A"))
    assert set(ranked[:3]) == {"A", "B", "C"}  # the shopper's own item is allowed
    assert ranked.index("B") < ranked.index("X")
    assert "Y" not in ranked and "Z" not in ranked


def test_session_knn_queries_only_the_latest_session() -> None:
    knn = SessionKnn(session_history())
    before_pause = views("me", "Y", start=T0)
    after_pause = views("me", "B", start=T0 + 2 * HOUR)  # more than 30 minutes later
    ranked = knn(before_pause + after_pause)
    assert set(ranked[:3]) == set("ABC")
    assert "Y" not in ranked and "X" not in ranked
    one_session = views("me", "YB")
    assert "X" in knn(one_session)


def test_session_knn_weighs_the_newest_query_item_most() -> None:
    events = views("s1", "AB") + views("s2", "CD", start=T0 + HOUR)
    knn = SessionKnn(events)
    assert knn(views("me", "CA"))[:2] == ["A", "B"]
    assert knn(views("me", "AC"))[:2] == ["C", "D"]


def test_session_knn_samples_the_most_recent_sessions() -> None:
    old = views("old", "AO", start=T0)
    new = views("new", "AN", start=T0 + 5 * HOUR)
    knn = SessionKnn(old + new, params=SessionKnnParams(sample=1))
    assert "N" in knn(views("me", "A")) and "O" not in knn(views("me", "A"))
    # across query items too: of the sessions sharing A or B, only the newest is a candidate
    old, new = views("old", "AO", start=T0), views("new", "BN", start=T0 + 5 * HOUR)
    knn = SessionKnn(old + new, params=SessionKnnParams(sample=1))
    assert knn(views("me", "BA")) == ["B", "N"]


def test_session_knn_candidates_are_only_sessions_of_the_query_items() -> None:
    # items in index order A, B, C, P, Q, R, S: A's and C's sessions lie next to B's and P's
    events = (
        views("s1", "AP", start=T0)
        + views("s2", "CQ", start=T0 + HOUR)
        + views("s3", "BR", start=T0 + 2 * HOUR)
        + views("s4", "BS", start=T0 + 3 * HOUR)
    )
    knn = SessionKnn(events, params=SessionKnnParams(sample=2))
    assert set(knn(views("me", "CA"))) == set("ACPQ")  # both sessions, none of B's


def test_large_catalogues_rank_the_same_without_the_dense_vector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    covisit, knn = Covisitation(covisit_history()), SessionKnn(session_history())
    queries = [views("me", q) for q in ("A", "CA", "EXY", "ABCXYZ")]
    dense = [(covisit(q), knn(q)) for q in queries]
    monkeypatch.setattr(neighbours, "DENSE_ITEMS", 0)
    assert [(covisit(q), knn(q)) for q in queries] == dense
