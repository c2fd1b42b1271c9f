"""A person's rights: ``DELETE /v1/users/{id}`` (erasure), ``GET .../export`` (access and
portability), ``PUT .../consent`` (profiling consent). Stored by
:class:`~recommender.adapters.privacy_store.PrivacyStore`."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import ProfilesEraser, ProfilesReader
from api.deps import ServicesDep
from api.schemas import (
    ConsentRequest,
    ConsentResponse,
    ConsentState,
    ErasureResponse,
    ExportedProfile,
    ExportResponse,
    MessageResponse,
    ValidationErrorResponse,
    iso,
)

router = APIRouter(tags=["privacy"])

UserId = Annotated[str, Path(min_length=1, max_length=128)]
ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": ValidationErrorResponse, "description": "Invalid user id or body"},
    503: {"model": MessageResponse, "description": "Redis unavailable"},
}


@router.delete("/v1/users/{user_id}", response_model=ErasureResponse, responses=ERRORS)
async def erase_user(user_id: UserId, services: ServicesDep, _: ProfilesEraser) -> ErasureResponse:
    """Erase the person: profile, purchases, exposure, consent; their older events stay out."""
    erased = await services.privacy.erase(user_id, time.time())
    return ErasureResponse(
        user_id=user_id,
        profile=erased.profile,
        features=erased.features,
        purchases=erased.purchases,
        exposure=erased.exposure,
        consent=erased.consent,
        erased_at=iso(erased.erased_at),
    )


@router.get("/v1/users/{user_id}/export", response_model=ExportResponse, responses=ERRORS)
async def export_user(user_id: UserId, services: ServicesDep, _: ProfilesReader) -> ExportResponse:
    """Everything stored about the person, as one JSON document."""
    now = time.time()
    settings = services.settings
    [profile], [state] = await services.privacy.profiles_with_states([user_id])
    default = settings.default_consent
    return ExportResponse(
        user_id=user_id,
        exported_at=iso(now),
        consent=ConsentState(
            profiling=state.profiling,
            default=default,
            effective=state.consents(default == "granted"),
        ),
        erased_at=iso(state.erased_at) if state.erased_at is not None else None,
        profile=None
        if profile is None
        else ExportedProfile.of(
            user_id, profile, now, services.engine.half_life_s, settings.profile_ttl_days
        ),
    )


@router.put("/v1/users/{user_id}/consent", response_model=ConsentResponse, responses=ERRORS)
async def set_consent(
    user_id: UserId, body: ConsentRequest, services: ServicesDep, _: ProfilesEraser
) -> ConsentResponse:
    """Record the person's profiling choice; a refusal deletes the profile at once."""
    deleted = await services.privacy.set_consent(user_id, body.profiling)
    return ConsentResponse(user_id=user_id, profiling=body.profiling, profile_deleted=deleted)
