"""The event contract: accepted forms and the field named in every rejection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.core.errors import InvalidEventError
from recommender.core.events import in_user_time_order, load_events, parse_event, read_event_lines


def raw(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_iso_and_epoch_millis_agree() -> None:
    a = parse_event(raw(user_id="u", type="page_view", item_id="i", ts="2025-11-23T10:00:00Z"))
    b = parse_event(raw(user_id="u", type="page_view", item_id="i", ts=1_763_892_000_000))
    c = parse_event(raw(user_id="u", type="page_view", item_id="i", ts="2025-11-23T11:00:00+01:00"))
    assert a.ts == b.ts == c.ts == 1_763_892_000.0


def test_canonical_json_round_trips() -> None:
    event = parse_event(
        raw(
            user_id="ü",
            type="search",
            query="Fernseher Reparatur",
            ts=1_763_892_000_123,
            channel="app",
            extra="ignored",
        )
    )
    assert parse_event(event.to_json()) == event
    assert b"extra" not in event.to_json()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (raw(type="search", query="tv"), "user_id"),
        (raw(user_id="", type="search", query="tv"), "user_id"),
        (raw(user_id="u" * 129, type="search", query="tv"), "user_id"),
        (raw(user_id=7, type="search", query="tv"), "user_id"),
        (raw(user_id="u", type="teleport"), "type"),
        (raw(user_id="u", type="page_view"), "item_id"),
        (raw(user_id="u", type="purchase", item_id=5), "item_id"),
        (raw(user_id="u", type="search"), "query"),
        (raw(user_id="u", type="search", query="   "), "query"),
        (raw(user_id="u", type="search", query="x" * 513), "query"),
        (raw(user_id="u", type="click"), "offer_id"),
        (raw(user_id="u", type="review", item_id="i", rating=6), "rating"),
        (raw(user_id="u", type="review", item_id="i", rating="5"), "rating"),
        (raw(user_id="u", type="search", query="tv", channel="fax"), "channel"),
        (raw(user_id="u", type="search", query="tv", ts=1_700_000_000), "ts"),  # seconds
        (raw(user_id="u", type="search", query="tv", ts="yesterday"), "ts"),
        (raw(user_id="u", type="search", query="tv", ts=True), "ts"),
    ],
)
def test_rejections_name_the_field(payload: bytes, field: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        parse_event(payload)
    assert info.value.field == field


@pytest.mark.parametrize("payload", [b"{", b"[]", b"null", b"\xff\xfe", b"", b'"text"'])
def test_not_an_event_object(payload: bytes) -> None:
    with pytest.raises(InvalidEventError):
        parse_event(payload)


def test_history_reader_reports_bad_lines_with_numbers() -> None:
    lines = [
        raw(user_id="u", type="search", query="tv", ts=1_763_892_000_000),
        b"",
        b"{broken",
        raw(user_id="u", type="page_view", item_id="i"),
    ]
    report = read_event_lines(lines, require_ts=True)
    assert len(report.events) == 1
    assert [n for n, _ in report.errors] == [3, 4]
    assert "ts" in report.errors[1][1]


T0 = 1_700_000_000


def _view(user: str, item: str, ts: int) -> bytes:
    return raw(user_id=user, type="page_view", item_id=item, ts=ts * 1000)


def test_each_users_events_come_back_in_time_order_in_that_users_slots() -> None:
    lines = [
        _view("a", "a3", T0 + 30),
        _view("b", "b2", T0 + 20),
        _view("a", "a1", T0 + 10),
        _view("b", "b1", T0 + 5),
        _view("a", "a2", T0 + 20),
        _view("a", "a2-again", T0 + 20),  # same time: file order kept
    ]
    events = read_event_lines(lines).events
    ordered = in_user_time_order(events)
    assert [(e.user_id, e.item_id) for e in ordered] == [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("b", "b2"),
        ("a", "a2-again"),
        ("a", "a3"),
    ]
    assert in_user_time_order(ordered) == ordered  # already in order: unchanged


def test_histories_load_in_user_time_order_and_replay_files_as_written(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([_view("a", "late", T0 + 60), _view("a", "early", T0)]))
    assert [e.item_id for e in load_events(path).events] == ["early", "late"]
    as_written = load_events(path, require_ts=False, user_time_order=False).events
    assert [e.item_id for e in as_written] == ["late", "early"]
