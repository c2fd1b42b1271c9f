"""One :class:`Call` per API operation: method, path, query, body and the answer's model.

Both clients build their requests here and differ only in how they send them (blocking or
asyncio), so the routes' shapes are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from zmot_client.events import Event, prepared
from zmot_client.models import (
    Accepted,
    BatchAnswer,
    Consent,
    Erasure,
    Export,
    Link,
    OfferAnswer,
    Profile,
)

T = TypeVar("T")
Channel = Literal["web", "app", "email", "store", "ad"]
EVENTS_PER_REQUEST = 1000
"""Events per ``POST /v1/events`` (the API takes up to 10,000; smaller requests retry cheaper)."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer (``parse``: JSON -> result)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, str | int] = field(default_factory=dict)
    json: Any = None
    language: str | None = None
    missing_ok: bool = False  # a 404 answers None instead of raising


def _user_path(user_id: str, rest: str = "") -> str:
    if not user_id:
        raise ValueError("user_id must not be empty")
    return f"/v1/users/{quote(user_id, safe='')}{rest}"


def send_events(events: Iterable[Event]) -> list[Call[int]]:
    """``POST /v1/events`` in chunks; each answers its accepted count."""
    rows = prepared(events)
    return [
        Call(
            "POST",
            "/v1/events",
            lambda data: Accepted.model_validate(data).accepted,
            json=rows[start : start + EVENTS_PER_REQUEST],
        )
        for start in range(0, len(rows), EVENTS_PER_REQUEST)
    ]


def _offer_query(
    k: int | None,
    placement: str | None,
    channel: Channel | None,
    context_item: str | None,
    timeout_ms: int | None,
) -> dict[str, Any]:
    query = {
        "k": k,
        "placement": placement,
        "channel": channel,
        "context_item": context_item,
        "timeout_ms": timeout_ms,
    }
    return {name: value for name, value in query.items() if value is not None}


def next_best_offer(
    user_id: str,
    k: int | None = None,
    placement: str | None = None,
    channel: Channel | None = None,
    context_item: str | None = None,
    *,
    debug: bool = False,
    same_category: bool = False,
    timeout_ms: int | None = None,
    language: str | None = None,
) -> Call[OfferAnswer]:
    params: dict[str, str | int] = {
        "user_id": user_id,
        **_offer_query(k, placement, channel, context_item, timeout_ms),
    }
    if debug:
        params["debug"] = "true"
    if same_category:
        params["same_category"] = "true"
    return Call("GET", "/v1/next-best-offer", OfferAnswer.model_validate, params, language=language)


def next_best_offers(
    user_ids: Sequence[str],
    k: int | None = None,
    placement: str | None = None,
    channel: Channel | None = None,
    context_item: str | None = None,
    *,
    debug: bool = False,
    timeout_ms: int | None = None,
    language: str | None = None,
) -> Call[list[OfferAnswer]]:
    body = {
        "user_ids": list(user_ids),
        "debug": debug,
        **_offer_query(k, placement, channel, context_item, timeout_ms),
    }
    return Call(
        "POST",
        "/v1/next-best-offer:batch",
        lambda data: list(BatchAnswer.model_validate(data).results),
        json=body,
        language=language,
    )


def profile(user_id: str) -> Call[Profile | None]:
    return Call("GET", _user_path(user_id, "/profile"), Profile.model_validate, missing_ok=True)


def export(user_id: str) -> Call[Export]:
    return Call("GET", _user_path(user_id, "/export"), Export.model_validate)


def erase(user_id: str) -> Call[Erasure]:
    return Call("DELETE", _user_path(user_id), Erasure.model_validate)


def consent(user_id: str, profiling: bool) -> Call[Consent]:
    return Call(
        "PUT",
        _user_path(user_id, "/consent"),
        Consent.model_validate,
        json={"profiling": bool(profiling)},
    )


def link(user_id: str, anonymous_id: str) -> Call[Link]:
    return Call(
        "POST",
        _user_path(user_id, "/links"),
        Link.model_validate,
        json={"anonymous_id": anonymous_id},
    )
