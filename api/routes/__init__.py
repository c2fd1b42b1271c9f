"""HTTP routes, one module per resource; :data:`api_router` mounts them all."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.routes import admin, events, health, offers, ops, privacy, profiles, sdk
from api.schemas import MessageResponse

KEY_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": MessageResponse, "description": "No API key, or an unknown one"},
    403: {
        "model": MessageResponse,
        "description": "The key lacks the route's scope (or the event type, or the origin)",
    },
    429: {
        "model": MessageResponse,
        "description": "Over the key's rate",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    },
}
"""With ``ZMOT_API_KEYS_FILE`` set (README, API keys)."""

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(sdk.router)
# Every other route takes a key: its 401, 403 and 429 are documented once, here.
for keyed in (events, offers, profiles, privacy, ops, admin):
    api_router.include_router(keyed.router, responses=KEY_ERRORS)

__all__ = ["api_router"]
