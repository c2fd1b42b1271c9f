"""The hot path of ``GET /v1/next-best-offer``: a plain Starlette route in front of the FastAPI one.

FastAPI resolves a route's dependencies and validates its query parameters on every request
through generic machinery that cost more than the arbitration itself (about 0.3 ms of a 1.1 ms
answer, see BENCHMARKS.md, issue 12). This route takes the requests whose query is plainly
well formed (each known parameter at most once, values obviously valid, see
:func:`parse_offer_query`) and answers them with the same code as the FastAPI route
(:func:`~api.routes.offers.answer_offers`), the same key check (:func:`~api.auth.require`) and
the same serialisation of :class:`~api.schemas.NextBestOfferResponse`, sent as a bare ASGI
app (no ``Request`` or ``Response`` object, no endpoint wrapper). Every other request
(an unknown or repeated parameter, anything that might be invalid) does not match here and
reaches the FastAPI route, whose validation and error bodies are thus unchanged; it also keeps
the route in the OpenAPI document.

Errors raised here (401/403/429/503, Redis down) go through the app's exception handlers, as
they do from the FastAPI route: this route sits in the same router.
"""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from api.auth import OPEN, require
from api.deps import services_of
from api.routes.offers import Channel, OfferQuery, answer_offers
from api.schemas import NextBestOfferResponse

PATH = "/v1/next-best-offer"
CHANNELS = frozenset(get_args(Channel))
BOOLS = {"true": True, "false": False, "1": True, "0": False}
LIMITS = {"user_id": 128, "placement": 128, "context_item": 256}
"""Most characters of each text parameter (as the FastAPI route's ``max_length``)."""

_offers_reader = require("offers:read")
_serialise = NextBestOfferResponse.__pydantic_serializer__.to_json


def _count(text: str, low: int, high: int) -> int | None:
    """A plain decimal integer in [low, high] (no sign, no leading zero), else None."""
    if not text.isascii() or not text.isdigit() or text[0] == "0" or len(text) > 9:
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_offer_query(query_string: bytes) -> OfferQuery | None:
    """The query when it is plainly valid for the FastAPI route, else None (let it decide).

    Plainly valid: only known parameters, each once; texts of 1 to their limit in characters;
    ``k`` and ``timeout_ms`` plain positive integers within range; ``channel`` one of the
    channels; booleans ``true``/``false``/``1``/``0``. Every such query means exactly what the
    FastAPI route reads from it."""
    if not query_string:
        return None
    try:
        text = query_string.decode("ascii")
    except UnicodeDecodeError:
        return None
    values: dict[str, str] = {}
    for part in text.split("&"):
        name, sep, raw = part.partition("=")
        if not sep or name in values:
            return None
        if "%" in raw or "+" in raw:
            try:
                raw = unquote_plus(raw, errors="strict")
            except UnicodeDecodeError:
                return None
        values[name] = raw
    try:
        user_id = values.pop("user_id")
    except KeyError:
        return None
    if not 1 <= len(user_id) <= LIMITS["user_id"]:
        return None
    fields: dict[str, Any] = {"user_id": user_id}
    for name, raw in values.items():
        if name in ("placement", "context_item"):
            if not 1 <= len(raw) <= LIMITS[name]:
                return None
            fields[name] = raw
        elif name in ("k", "timeout_ms"):
            number = _count(raw, 1, 60_000 if name == "timeout_ms" else 10**9)
            if number is None:
                return None
            fields[name] = number
        elif name == "channel":
            if raw not in CHANNELS:
                return None
            fields["channel"] = raw
        elif name in ("debug", "same_category"):
            if raw not in BOOLS:
                return None
            fields[name] = BOOLS[raw]
        else:
            return None
    return OfferQuery(**fields)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case), as ``Request.headers.get``."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _next_best_offer(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer as an ASGI app: what ``Response(_serialise(answer), media_type=
    "application/json")`` sends from a Starlette endpoint, without the ``Request`` and
    ``Response`` objects and the endpoint wrapper (errors reach the app's exception handlers
    through the router's). A ``Request`` is made only to check a key."""
    state = scope["app"].state
    services = services_of(state)
    if state.access.keys is None:
        caller = OPEN  # what the key check answers in open mode
    else:
        caller = await _offers_reader(Request(scope, receive, send))
    query: OfferQuery = scope["zmot.offer_query"]
    answer = await answer_offers(services, caller, query, _header(scope, b"accept-language"))
    body = _serialise(answer)
    headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _route_path(scope: Any) -> str:
    """The path below the app's ``root_path`` (as Starlette's router matches it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


class FastOffers(Route):
    """Matches ``GET /v1/next-best-offer`` with a plainly valid query (see the module)."""

    def __init__(self) -> None:
        super().__init__(PATH, _next_best_offer, methods=["GET"], include_in_schema=False)
        self.app = _next_best_offer  # an ASGI app (Route would wrap a function as an endpoint)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _next_best_offer(scope, receive, send)  # matches() took GET only

    def matches(self, scope: Any) -> tuple[Match, dict[str, Any]]:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and _route_path(scope) == PATH
            and (query := parse_offer_query(scope.get("query_string", b""))) is not None
        ):
            return Match.FULL, {
                "endpoint": self.endpoint,
                "path_params": {},
                "route": self,
                "zmot.offer_query": query,
            }
        return Match.NONE, {}
