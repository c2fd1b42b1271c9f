"""The decision log's join with feedback, by hand: which logged decisions earned the reward."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.decision_log import (
    DecisionLine,
    LoggedDecision,
    LoggedSlot,
    decision_entry,
    decode_record,
    encode_record,
    logged_rewards,
)
from recommender.core.errors import InvalidEventError
from recommender.core.events import Event, validate_event
from recommender.core.ope import Logged

HOUR = 3600.0


def decision(did: str, user: str, ts: float, *offers: tuple[str, str]) -> LoggedDecision:
    slots = tuple(LoggedSlot(o, i, "greedy", 0.5) for o, i in offers)
    return LoggedDecision(did, user, ts, slots, placement="home", model_version="v1")


def event(user: str, kind: str, ts: float, **fields: str) -> Event:
    return validate_event({"user_id": user, "type": kind, "ts": int(ts * 1000), **fields})


T = 1_790_000_000.0
LOG = [
    decision("d1", "u1", T, ("tv-deal", "tv-1"), ("mount", "mount-1")),
    decision("d2", "u1", T + 60, ("tv-deal", "tv-1")),
    decision("d3", "u2", T, ("boots", "boots-1")),
    decision("d4", "u3", T),  # nothing shown: no row
    decision("d5", "u4", T, ("tv-deal", "tv-1")),
]


def rows(events: list[Event], reward: str = "click") -> dict[str, float]:
    shown = [d for d in LOG if d.offers]
    got = logged_rewards(LOG, events, reward=reward, window_s=HOUR)  # type: ignore[arg-type]
    assert [(r.offer_id, r.probability) for r in got] == [
        (d.offers[0].offer_id, 0.5) for d in shown
    ]
    return {d.decision_id: r.reward for d, r in zip(shown, got, strict=True)}


def test_a_click_naming_the_decision_rewards_it_alone() -> None:
    got = rows([event("u1", "click", T + 5, offer_id="tv-deal", decision_id="d1")])
    assert got == {"d1": 1.0, "d2": 0.0, "d3": 0.0, "d5": 0.0}


def test_clicks_that_do_not_fit_earn_nothing() -> None:
    got = rows(
        [
            event("u1", "click", T + 5, offer_id="mount", decision_id="d1"),  # not the 1st slot
            event("u9", "click", T + 5, offer_id="boots", decision_id="d3"),  # someone else
            event("u2", "click", T + 2 * HOUR, offer_id="boots"),  # after the window
            event("u4", "impression", T + 5, offer_id="tv-deal", decision_id="d5"),  # no click
        ]
    )
    assert set(got.values()) == {0.0}


def test_a_click_without_decision_id_goes_to_the_latest_decision_showing_the_offer() -> None:
    got = rows([event("u1", "click", T + 120, offer_id="tv-deal")])
    assert got == {"d1": 0.0, "d2": 1.0, "d3": 0.0, "d5": 0.0}
    early = rows([event("u1", "click", T + 30, offer_id="tv-deal")])  # before d2
    assert early["d1"] == 1.0 and early["d2"] == 0.0


def test_a_purchase_of_the_offered_item_is_a_conversion_of_the_last_touch() -> None:
    events = [
        event("u1", "purchase", T + 600, item_id="tv-1"),
        event("u2", "purchase", T + 600, item_id="tv-1"),  # u2 was offered boots
        event("u4", "add_to_cart", T + 600, item_id="tv-1"),  # a cart is no conversion
    ]
    got = rows(events, reward="conversion")
    assert got == {"d1": 0.0, "d2": 1.0, "d3": 0.0, "d5": 0.0}
    assert rows(events, reward="click") == dict.fromkeys(got, 0.0)


def test_entries_round_trip_and_a_bad_one_is_refused() -> None:
    entry = LOG[0]
    assert LoggedDecision.from_json(entry.to_json()) == entry
    with pytest.raises(InvalidEventError, match="not a logged decision"):
        LoggedDecision.from_json(b'{"decision_id": "x"}')
    with pytest.raises(InvalidEventError):
        LoggedDecision.from_json(b"[1, 2]")
    assert isinstance(logged_rewards([], [], reward="click", window_s=HOUR), list)
    assert logged_rewards([LOG[3]], [], reward="click", window_s=HOUR) == []
    assert logged_rewards([LOG[4]], [], reward="click", window_s=HOUR) == [
        Logged("tv-deal", 0.5, 0.0)
    ]


def test_to_json_is_json_dumps_byte_for_byte() -> None:
    """The message bytes are json.dumps's with compact separators (non-ASCII escaped, floats
    as repr), as before the encoder was kept for every call."""
    import json

    entry = decision_entry(
        "d-1",
        "usér \u2603",
        1_770_000_000.123456,
        [("o-1", "i-\u00e9", "explore", 1e-05), ("o-2", "i-2", "greedy", 1.0)],
        {"placement": 'home "top"', "stage": "zmot", "fallback": False, "model_version": "v"},
    )
    expected = json.dumps(
        {
            "decision_id": "d-1",
            "user_id": "usér \u2603",
            "ts": 1_770_000_000.123456,
            "placement": 'home "top"',
            "stage": "zmot",
            "fallback": False,
            "experiment": None,
            "arm": None,
            "model_version": "v",
            "offers": [
                {
                    "offer_id": "o-1",
                    "item_id": "i-\u00e9",
                    "policy": "explore",
                    "probability": 1e-05,
                },
                {"offer_id": "o-2", "item_id": "i-2", "policy": "greedy", "probability": 1.0},
            ],
        },
        separators=(",", ":"),
    ).encode()
    assert entry.to_json() == expected


def test_a_record_holds_one_decision_or_json_lines_of_them() -> None:
    """Records written before batching (one decision, keyed by user) and batched records
    (JSON lines) read back alike; a bad line is named, the good ones kept."""
    assert decode_record(LOG[0].to_json()) == ([LOG[0]], [])  # the old one-decision record
    assert encode_record([LOG[0].to_json()]) == LOG[0].to_json()  # a batch of one: the same
    assert decode_record(encode_record([e.to_json() for e in LOG])) == (LOG, [])
    tricky = decision_entry("d\n1", "line\nbreak\r\u2028", T, [("o\n", "i", "greedy", 1.0)], {})
    record = encode_record([tricky.to_json(), LOG[1].to_json()])
    assert record.count(b"\n") == 1  # newlines inside values are escaped
    assert decode_record(record) == ([tricky, LOG[1]], [])
    found, bad = decode_record(LOG[0].to_json() + b'\n{"decision_id": "x"}\n\n' + LOG[2].to_json())
    assert found == [LOG[0], LOG[2]]
    assert len(bad) == 1 and bad[0].startswith("line 2: not a logged decision")
    assert decode_record(b"") == ([], ["empty record"])
    assert decode_record(b"\xff\xfe")[1][0].startswith("line 1: not a logged decision")


def test_the_join_does_not_depend_on_the_order_the_log_is_read_in() -> None:
    """Batched records carry no per-user key, so one person's decisions may come back from
    several partitions in any order: the rewards are the same (equal times included)."""
    import random

    log = [
        decision("a", "u1", T, ("tv-deal", "tv-1")),
        decision("b", "u1", T, ("tv-deal", "tv-1")),  # same person, same time, same offer
        decision("c", "u1", T + 30, ("mount", "mount-1"), ("tv-deal", "tv-1")),
        decision("d", "u1", T - 30, ("tv-deal", "tv-1")),
        decision("e", "u2", T, ("boots", "boots-1")),
    ]
    events = [
        event("u1", "click", T + 20, offer_id="tv-deal"),  # before c
        event("u1", "purchase", T + 90, item_id="mount-1"),
        event("u2", "click", T + 5, offer_id="boots", decision_id="e"),
    ]
    rng = random.Random(7)
    for reward in ("click", "conversion"):
        want = None
        for _ in range(30):
            shuffled = rng.sample(log, len(log))
            got = logged_rewards(shuffled, events, reward=reward, window_s=HOUR)  # type: ignore[arg-type]
            by_id = {d.decision_id: r.reward for d, r in zip(shuffled, got, strict=True)}
            want = want or by_id
            assert by_id == want
        assert want is not None
        if reward == "click":  # a and b are the latest before c: b (> a)
            assert want == {"a": 0.0, "b": 1.0, "c": 0.0, "d": 0.0, "e": 1.0}
        else:
            assert want == {"a": 0.0, "b": 0.0, "c": 1.0, "d": 0.0, "e": 0.0}


_texts = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["home", "zmot", "v1"]))
_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**12), 10**12),
    st.floats(0, 1).map(np.float64),
)


@settings(max_examples=400, deadline=None)
@given(
    decision_id=st.text(max_size=40),
    user_id=st.text(max_size=20),
    ts=_numbers,
    offers=st.lists(
        st.tuples(st.text(max_size=8), st.text(max_size=8), _texts, _numbers), max_size=5
    ),
    context=st.tuples(_texts, _texts, st.booleans(), _texts, _texts, _texts),
)
def test_the_apis_line_is_the_bytes_of_the_entry_it_replaced(
    decision_id: str,
    user_id: str,
    ts: float,
    offers: list[tuple[str, str, str, float]],
    context: tuple[str | None, str | None, bool, str | None, str | None, str | None],
) -> None:
    """DecisionLine (what the API queues since the log is batched) writes exactly what
    decision_entry(...).to_json() wrote for the same answer, which stays the oracle."""
    placement, stage, fallback, experiment, arm, model_version = context
    line = DecisionLine(
        decision_id, user_id, ts, offers, placement, stage, fallback, experiment, arm, model_version
    )
    old = decision_entry(
        decision_id,
        user_id,
        ts,
        offers,
        {
            "placement": placement,
            "stage": stage,
            "fallback": fallback,
            "experiment": experiment,
            "arm": arm,
            "model_version": model_version,
        },
    )
    assert line.to_json() == old.to_json()
    assert line.decision().to_json() == old.to_json()
