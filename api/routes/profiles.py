"""``GET /v1/users/{user_id}/profile``: a user's live profile, for support and debugging."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import ProfilesReader
from api.deps import ServicesDep, reject
from api.schemas import MessageResponse, ProfileResponse, ValidationErrorResponse

router = APIRouter(tags=["profiles"])


@router.get(
    "/v1/users/{user_id}/profile",
    response_model=ProfileResponse,
    responses={
        404: {"model": MessageResponse, "description": "No profile for this user"},
        422: {"model": ValidationErrorResponse, "description": "Invalid user id"},
        503: {"model": MessageResponse, "description": "Redis unavailable"},
    },
)
async def user_profile(
    user_id: Annotated[str, Path(min_length=1, max_length=128)],
    services: ServicesDep,
    _: ProfilesReader,
) -> ProfileResponse:
    """The user's features decayed to now, last update, events applied and purchases."""
    profile = await services.store.get(user_id)
    if profile is None:
        raise reject(404, f"no profile for user {user_id!r}")
    return ProfileResponse.from_profile(user_id, profile, time.time(), services.engine.half_life_s)
