"""A person's rights: ``DELETE /v1/users/{id}`` (erasure), ``GET .../export`` (access and
portability), ``PUT .../consent`` (profiling consent). Stored by
:class:`~recommender.adapters.privacy_store.PrivacyStore`."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import EventsWriter, ProfilesEraser, ProfilesReader
from api.deps import ServicesDep, reject
from api.schemas import (
    ConsentRequest,
    ConsentResponse,
    ConsentState,
    ErasureResponse,
    ExportedProfile,
    ExportResponse,
    LinkRequest,
    LinkResponse,
    MessageResponse,
    ValidationErrorResponse,
    iso,
)
from recommender.adapters.privacy_store import MAX_LINKS

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
        linked=erased.linked,
        erased_at=iso(erased.erased_at),
    )


@router.get("/v1/users/{user_id}/export", response_model=ExportResponse, responses=ERRORS)
async def export_user(user_id: UserId, services: ServicesDep, _: ProfilesReader) -> ExportResponse:
    """Everything stored about the person, as one JSON document."""
    now = time.time()
    settings = services.settings
    [profile], [state] = await services.privacy.profiles_with_states([user_id])
    linked = await services.privacy.linked(user_id)
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
        linked_ids=linked,
    )


@router.put("/v1/users/{user_id}/consent", response_model=ConsentResponse, responses=ERRORS)
async def set_consent(
    user_id: UserId, body: ConsentRequest, services: ServicesDep, _: ProfilesEraser
) -> ConsentResponse:
    """Record the person's profiling choice; a refusal deletes the profile at once."""
    deleted = await services.privacy.set_consent(user_id, body.profiling)
    return ConsentResponse(user_id=user_id, profiling=body.profiling, profile_deleted=deleted)


@router.post(
    "/v1/users/{user_id}/links",
    response_model=LinkResponse,
    responses={
        **ERRORS,
        409: {"model": MessageResponse, "description": "The user has the most links allowed"},
    },
)
async def link_user(
    user_id: UserId, body: LinkRequest, services: ServicesDep, _: EventsWriter
) -> LinkResponse:
    """Link an anonymous id to the user (login): its history is served with the user's."""
    ttl_s = services.settings.profile_ttl_days * 86400.0
    if body.anonymous_id != user_id and not await services.privacy.link(
        user_id, body.anonymous_id, ttl_s
    ):
        raise reject(409, f"user already has {MAX_LINKS} linked anonymous ids")
    linked = await services.privacy.linked(user_id)
    return LinkResponse(user_id=user_id, anonymous_id=body.anonymous_id, linked_ids=linked)
