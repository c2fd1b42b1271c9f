"""HTTP routes, one module per resource; :data:`api_router` mounts them all."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import events, health, offers, profiles

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(events.router)
api_router.include_router(offers.router)
api_router.include_router(profiles.router)

__all__ = ["api_router"]
