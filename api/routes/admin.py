"""``POST /v1/admin/reload`` (offers and placements) and ``POST /v1/admin/model`` (the model the
registry's pointer names), both without a restart."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.auth import Admin
from api.deps import ServicesDep, error_detail, reject
from api.model_switch import ModelSwitch
from api.schemas import MessageResponse, ModelSwapResponse, ReloadResponse, ValidationErrorResponse
from recommender.core.errors import CatalogError, ConfigError

router = APIRouter(tags=["admin"])


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResponse,
    responses={422: {"model": ValidationErrorResponse, "description": "Invalid offer file"}},
)
async def reload_offers(request: Request, _services: ServicesDep, _: Admin) -> ReloadResponse:
    """Reload offers and placements; a bad file is a 422 and the old catalog stays active.
    Other API processes (``zmot api --workers N``) follow within ``ZMOT_MODEL_POLL_S``: they
    watch the files."""
    switch: ModelSwitch = request.app.state.model_switch
    try:
        engine = await switch.reload_offers()
    except (CatalogError, ConfigError) as exc:
        raise reject(422, [error_detail(str(exc))]) from None
    return ReloadResponse(
        catalog_version=engine.catalog_version,
        offers=engine.n_offers,
        placements=sorted(engine.arbiter.placements.by_name),
    )


@router.post(
    "/v1/admin/model",
    response_model=ModelSwapResponse,
    responses={409: {"model": MessageResponse, "description": "The pointed-at model was refused"}},
)
async def swap_model(request: Request, _services: ServicesDep, _: Admin) -> ModelSwapResponse:
    """Serve the model the registry's ``current`` pointer names now (409 when refused)."""
    switch: ModelSwitch = request.app.state.model_switch
    result = await switch.check()
    if result.refused is not None:
        raise reject(409, result.refused)
    return ModelSwapResponse(model_version=result.model_version, previous=result.previous)
