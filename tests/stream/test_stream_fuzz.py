"""Whatever a producer sends, validation answers with an event or a dead letter: never raises.

Hypothesis throws arbitrary bytes, arbitrary JSON and near-valid events (every field of the
contract with values of any type) with any key at :func:`stream.batch.validate` and
:meth:`stream.batch.Plan.of`; the worker test with 10,000 malformed messages
(``test_stream_worker``) does the same through Kafka.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.core.errors import InvalidEventError
from recommender.core.events import Event, parse_event, parse_event_plainly
from stream.batch import Plan, validate
from stream.dead_letters import DeadLetter
from stream.records import Record

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["user_id", "type", "ts", "item_id", "query", "offer_id", "placement", "rating",
          "channel", "event_id"]  # fmt: skip
TYPES = ["page_view", "search", "add_to_cart", "purchase", "impression", "click", "dismiss",
         "review", "teleport"]  # fmt: skip
near_valid = st.fixed_dictionaries(
    {"user_id": st.sampled_from(["u1", "", "ü", 7]), "type": st.sampled_from(TYPES)},
    optional={
        name: json_values | st.sampled_from(["x", "tv repair", 3, 1795428900000, "2026-11-23"])
        for name in FIELDS[2:]
    },
)
values = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | near_valid.map(lambda v: json.dumps(v).encode())
    | st.none()
)
keys = st.none() | st.sampled_from([b"u1", b"\xc3\xbc", b"", b"\xff"]) | st.binary(max_size=8)
timestamps = st.none() | st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


@settings(max_examples=1500, deadline=None)
@given(values, keys, timestamps)
def test_validate_never_raises_and_accepts_only_keyed_timed_events(
    value: bytes | None, key: bytes | None, ts: float | None
) -> None:
    outcome = validate(Record("ev", 0, 5, ts, key, value))
    if isinstance(outcome, DeadLetter):
        assert outcome.reason and outcome.record.value == value
    else:
        assert isinstance(outcome, Event)
        assert key == outcome.user_id.encode() and outcome.ts is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(values, keys), max_size=30))
def test_a_batch_splits_into_events_per_user_and_dead_letters(
    messages: list[tuple[Any, Any]],
) -> None:
    records = [Record("ev", 1, i, 1.8e9, k, v) for i, (v, k) in enumerate(messages)]
    plan = Plan.of(records)
    applied = [r.offset for pairs in plan.by_user.values() for r, _ in pairs]
    dead = [offset for _, offset in plan.letters]
    assert sorted(applied + dead) == list(range(len(records)))


@settings(max_examples=3000, deadline=None)
@given(
    values.filter(lambda v: v is not None)
    | near_valid.map(lambda v: json.dumps(v, ensure_ascii=False).encode())
    | near_valid.map(lambda v: json.dumps(v).encode("utf-16"))
    | near_valid.map(lambda v: b"\xef\xbb\xbf" + json.dumps(v).encode())
)
def test_the_one_pass_parse_agrees_with_the_plain_one(value: bytes) -> None:
    """Where pydantic-core's one pass accepts a message, it makes the event the plain path
    makes; where it refuses, parse_event answers as the plain path does."""
    try:
        plain: Event | str = parse_event_plainly(value)
    except InvalidEventError as exc:
        plain = f"invalid: {exc}"
    try:
        one_pass: Event | str = Event.model_validate_json(value)
    except Exception:  # noqa: BLE001 - refused: the plain path answers
        one_pass = "refused"
    if one_pass != "refused":
        assert one_pass == plain
    try:
        got: Event | str = parse_event(value)
    except InvalidEventError as exc:
        got = f"invalid: {exc}"
    assert got == plain
