"""Exceptions of the client; all derive from :class:`ZmotClientError`.

::

    ZmotClientError
    ├── TransportError        no answer (connection refused, timeout) after every retry
    └── ApiError              the API answered with an error status (``status``, ``detail``)
        ├── Unauthorized      401: no key or an unknown key
        ├── Forbidden         403: the key lacks the scope, the event type or the origin
        ├── NotFound          404
        ├── InvalidRequest    422: ``detail`` lists ``{"index", "field", "reason"}``
        └── Unavailable       429 or 503 after every retry (rate limit, Redis or Kafka down)
"""

from __future__ import annotations

from typing import Any


class ZmotClientError(Exception):
    """Root of the client's exceptions."""


class TransportError(ZmotClientError):
    """No answer from the API after every retry."""


class ApiError(ZmotClientError):
    """The API answered with an error status."""

    def __init__(self, status: int, detail: Any, method: str, path: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{method} {path}: {status} {detail}")


class Unauthorized(ApiError):
    """401: send a key (``api_key=``) the API knows."""


class Forbidden(ApiError):
    """403: the key lacks the route's scope, the event type or the origin."""


class NotFound(ApiError):
    """404."""


class InvalidRequest(ApiError):
    """422: ``detail`` names each bad field (and its index in a batch)."""


class Unavailable(ApiError):
    """429 or 503 after every retry."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: InvalidRequest,
    429: Unavailable,
    503: Unavailable,
}


def api_error(status: int, detail: Any, method: str, path: str) -> ApiError:
    """The exception of an error answer."""
    return _BY_STATUS.get(status, ApiError)(status, detail, method, path)
