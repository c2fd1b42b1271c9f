"""Who is calling: API keys and their scopes, per-key rate limits, CORS per key, open mode.

Every route but ``/healthz``, ``/readyz`` and the OpenAPI pages takes one of the ``require``
dependencies below (the aliases at the end), so a route's scope is visible in its signature.
A key comes as ``Authorization: Bearer <key>``, ``X-API-Key: <key>``, or as the password of
HTTP Basic auth (what a browser sends for the ops page after asking for it). Missing or
unknown key: 401; a known key without the route's scope (or from an origin it does not list):
403; over its rate: 429 with ``Retry-After``.

Without ``ZMOT_API_KEYS_FILE`` the API is open: :func:`access_from_settings` allows that only
on a loopback address (warning at start-up), or anywhere with ``ZMOT_ALLOW_OPEN=true``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from api.monitoring import ASGIApp, Message, Receive, Scope, Send
from recommender.adapters.rate_limit import RateLimiter
from recommender.core.access import KeyEntry, KeyFile
from recommender.core.errors import ConfigError
from recommender.core.settings import Settings, is_loopback

logger = logging.getLogger("zmot.api")

OPS_REALM = 'Basic realm="zmot ops", charset="UTF-8"'
"""Asked for on ops routes, so a browser prompts for the key (as the password)."""

CORS_METHODS = "GET, POST, PUT, DELETE"
CORS_HEADERS = "Authorization, X-API-Key, Content-Type, Accept-Language"
CORS_MAX_AGE_S = 600


@dataclass
class Access:
    """How this app authenticates: a :class:`KeyFile`, or nothing (open mode).

    ``limiter`` is connected by the lifespan (it needs Redis); until then keys with a rate are
    not limited.
    """

    keys: KeyFile | None
    limiter: RateLimiter | None = field(default=None)

    @property
    def open(self) -> bool:
        return self.keys is None


@dataclass(frozen=True)
class Caller:
    """The key of a request (None in open mode, where everything is allowed)."""

    key: KeyEntry | None

    @property
    def generic_reasons(self) -> bool:
        return self.key is not None and self.key.generic_reasons

    def may_send(self, event_type: str) -> bool:
        return self.key is None or self.key.may_send(event_type)


OPEN = Caller(None)


def access_from_settings(settings: Settings) -> Access:
    """The app's :class:`Access`; refuses (:class:`ConfigError`) to serve open off loopback."""
    if settings.api_keys_file is not None:
        return Access(KeyFile(settings.api_keys_file))
    where = f"{settings.api_host}:{settings.api_port}"
    if settings.allow_open:
        logger.warning(
            "ZMOT_ALLOW_OPEN=true: the API on %s serves WITHOUT API keys; anyone who reaches it "
            "can read profiles, write events and erase people. Set ZMOT_API_KEYS_FILE.",
            where,
        )
    elif is_loopback(settings.api_host):
        logger.warning(
            "no ZMOT_API_KEYS_FILE: the API on %s is open (allowed on loopback only); "
            "`zmot keys create --name NAME --scopes ... --file keys.yaml` and "
            "ZMOT_API_KEYS_FILE=keys.yaml turn keys on",
            where,
        )
    else:
        raise ConfigError(
            f"refusing to serve {where} without API keys: set ZMOT_API_KEYS_FILE (see `zmot "
            "keys create`), bind ZMOT_API_HOST to 127.0.0.1, or set ZMOT_ALLOW_OPEN=true "
            "behind a gateway that authenticates"
        )
    return Access(None)


def presented_key(request: Request) -> str | None:
    """The key of a request: Bearer, X-API-Key, or the password of Basic auth."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and value.strip():
            return value.strip()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            password = decoded.partition(":")[2]
            return password or None
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _unauthorized(detail: str, scope: str) -> HTTPException:
    challenge = OPS_REALM if scope == "ops:read" else 'Bearer realm="zmot"'
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def require(scope: str) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency that admits requests whose key has ``scope`` (and is within its rate)."""

    async def dependency(request: Request) -> Caller:
        access: Access = request.app.state.access
        if access.keys is None:
            return OPEN
        presented = presented_key(request)
        if presented is None:
            raise _unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'", scope
            )
        entry = access.keys.current().find(presented)
        if entry is None:
            raise _unauthorized("unknown API key", scope)
        if not entry.allows(scope):
            raise HTTPException(403, f"key {entry.name!r} lacks the scope {scope!r}")
        origin = request.headers.get("origin")
        if origin is not None and entry.origins and origin not in entry.origins:
            raise HTTPException(403, f"key {entry.name!r} is not allowed from this origin")
        request.state.api_key = entry  # read by KeyCors for the response's CORS headers
        if entry.rate is not None and access.limiter is not None:
            wait_s = await access.limiter.hit(entry.name, entry.rate)
            if wait_s is not None:
                raise HTTPException(
                    429,
                    f"key {entry.name!r} is over its rate ({entry.rate.per_second:g}/s, burst "
                    f"{entry.rate.burst}); retry later",
                    headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
                )
        return Caller(entry)

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


class KeyCors:
    """Pure ASGI middleware: CORS answers for the origins the keys list, nothing else.

    A preflight carries no key, so it is answered for any origin some key lists; the response
    to the real request then carries ``Access-Control-Allow-Origin`` only when the request's key
    lists that origin (set by :func:`require` on ``request.state``). Open mode sends no CORS
    headers at all (as before keys existed): browsers keep other sites' pages out.
    """

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self.access.keys
        if scope["type"] != "http" or keys is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(origin, origin in keys.current().origins, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry: Any = scope.get("state", {}).get("api_key")
                if isinstance(entry, KeyEntry) and origin in entry.origins:
                    message["headers"] = [
                        *message.get("headers", []),
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-expose-headers", b"Retry-After"),
                        (b"vary", b"Origin"),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _preflight(origin: str, allowed: bool, send: Send) -> None:
        headers = [(b"vary", b"Origin"), (b"content-length", b"0")]
        if allowed:
            headers += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", CORS_METHODS.encode()),
                (b"access-control-allow-headers", CORS_HEADERS.encode()),
                (b"access-control-max-age", str(CORS_MAX_AGE_S).encode()),
            ]
        status = 204 if allowed else 403
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


EventsWriter = Annotated[Caller, Depends(require("events:write"))]
OffersReader = Annotated[Caller, Depends(require("offers:read"))]
ProfilesReader = Annotated[Caller, Depends(require("profiles:read"))]
ProfilesEraser = Annotated[Caller, Depends(require("profiles:erase"))]
Admin = Annotated[Caller, Depends(require("admin"))]
OpsReader = Annotated[Caller, Depends(require("ops:read"))]
