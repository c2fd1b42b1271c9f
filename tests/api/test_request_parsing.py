"""Parsing of ``POST /v1/events`` bodies, without a server: the same validator as the worker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import HTTPException

from api.deps import parse_events

VIEW = {"user_id": "u1", "type": "page_view", "item_id": "tv-1", "ts": "2025-11-23T10:00:00Z"}


@dataclass
class Rejection:
    status_code: int
    detail: Any


def rejected(body: bytes, max_batch: int = 10_000) -> Rejection:
    with pytest.raises(HTTPException) as info:
        parse_events(body, max_batch)
    return Rejection(info.value.status_code, info.value.detail)


def test_one_event_and_a_batch_parse_to_events() -> None:
    assert [e.item_id for e in parse_events(json.dumps(VIEW).encode())] == ["tv-1"]
    batch = [VIEW, {"user_id": "u2", "type": "search", "query": "tv repair"}]
    events = parse_events(json.dumps(batch).encode())
    assert [(e.user_id, e.type) for e in events] == [("u1", "page_view"), ("u2", "search")]
    assert events[0].ts == 1763892000.0


def test_every_invalid_event_of_a_batch_is_named_by_index_and_field() -> None:
    batch = [
        VIEW,
        {"user_id": "u1", "type": "page_view"},
        {"type": "search", "query": "tv"},
        {"user_id": "u1", "type": "teleport"},
        "not an object",
        {"user_id": "u1", "type": "review", "item_id": "tv-1", "rating": 9},
        {"user_id": "u1", "type": "page_view", "item_id": "x", "ts": 1763892000},
    ]
    err = rejected(json.dumps(batch).encode())
    assert err.status_code == 422
    detail = err.detail
    assert [(d["index"], d["field"]) for d in detail] == [
        (1, "item_id"),
        (2, "user_id"),
        (3, "type"),
        (4, None),
        (5, "rating"),
        (6, "ts"),
    ]
    assert detail[0]["reason"] == "item_id is required for page_view events"
    assert "1970" in detail[5]["reason"] or "impossible" in detail[5]["reason"]
    assert "JSON object" in detail[3]["reason"]


def test_single_invalid_event_has_no_index() -> None:
    err = rejected(b'{"user_id": "u1", "type": "search"}')
    assert err.status_code == 422
    assert err.detail == [
        {"index": None, "field": "query", "reason": "query is required for search events"}
    ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "not JSON"),
        (b"{user_id: u1}", "not JSON"),
        (b"\xff\xfe\x00garbage", "not"),
        (b"[]", "empty batch"),
        (b"42", "got int"),
        (b'"page_view"', "got str"),
        (b"null", "got NoneType"),
    ],
)
def test_bodies_that_are_no_events_are_422(body: bytes, words: str) -> None:
    err = rejected(body)
    assert err.status_code == 422
    assert len(err.detail) == 1 and words in err.detail[0]["reason"]


def test_batch_over_the_limit_is_413_before_validation() -> None:
    err = rejected(json.dumps([{"bad": 1}] * 4).encode(), max_batch=3)
    assert err.status_code == 413
    assert "at most 3" in err.detail
