"""The ASGI app of ``bench_api_floor.py``: the least a next-best-offer does, stage by stage.

Not zmot's API: a FastAPI app with a ``/healthz`` like the API's (a route with a pydantic
response model) and three plain Starlette routes that do, cumulatively, the part of a
next-best-offer every answer needs, with zmot's own code for each part:

* ``/floor/redis?user_id=U``: ``GET`` of the user's profile key (redis-py's asyncio client,
  as the API connects: :func:`~recommender.adapters.redis_store.connect`), a fixed body;
* ``/floor/decode?user_id=U``: the API's profile read instead
  (:func:`~recommender.adapters.redis_store.read_profiles`: ``MGET`` + ``EXISTS``, the compact
  value decoded with the shared vocabulary), a fixed body;
* ``/floor/score?user_id=U``: that, then the model's score of every item for the profile's
  normalised weights (:meth:`~recommender.core.model.Model.scores`, LightFM's dot products),
  the ``k`` best (:func:`~recommender.core.scoring.top_k`) and a JSON body naming them.

Everything else of a real answer (rules, placements, calibration, exploration, reasons, the
decision log, metrics, keys and rate limits) is left out, so ``score`` over ``/healthz`` is a
floor for what any next-best-offer written in Python on this stack can cost.

Configured by the environment: ``ZMOT_REDIS_URL``, ``ZMOT_REDIS_PREFIX`` (where
``bench_api_floor.py`` wrote the profiles), ``FLOOR_MODEL`` (a ``zmot train`` directory),
``FLOOR_K``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recommender.adapters.keys import profile_key
from recommender.adapters.redis_store import connect, read_profiles
from recommender.core.model import Model
from recommender.core.scoring import top_k

EMPTY = b'{"offers":[]}'


class Health(BaseModel):
    status: str = "ok"


def make_app() -> FastAPI:
    """The floor app of the environment's Redis, prefix and model (module docstring)."""
    prefix = os.environ.get("ZMOT_REDIS_PREFIX", "zmot:")
    model = Model.load(Path(os.environ["FLOOR_MODEL"]))
    k = int(os.environ.get("FLOOR_K", "3"))
    items = model.item_ids
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state["client"] = connect(os.environ["ZMOT_REDIS_URL"])
        yield
        await state["client"].aclose(close_connection_pool=True)

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health()

    async def redis_only(request: Request) -> Response:
        await state["client"].get(profile_key(prefix, request.query_params["user_id"]))
        return Response(EMPTY, media_type="application/json")

    async def decode(request: Request) -> Response:
        key = profile_key(prefix, request.query_params["user_id"])
        await read_profiles(state["client"], [key])
        return Response(EMPTY, media_type="application/json")

    async def score(request: Request) -> Response:
        user_id = request.query_params["user_id"]
        [profile] = await read_profiles(state["client"], [profile_key(prefix, user_id)])
        raw = model.scores(profile.normalised()) if profile is not None else None
        if raw is None:
            return Response(EMPTY, media_type="application/json")
        best = top_k(raw.astype("float64"), k)
        offers = [{"item_id": items[i], "score": float(raw[i])} for i in best]
        return Response(
            to_json({"user_id": user_id, "offers": offers}), media_type="application/json"
        )

    for path, endpoint in (
        ("/floor/redis", redis_only),
        ("/floor/decode", decode),
        ("/floor/score", score),
    ):
        app.router.routes.insert(0, Route(path, endpoint, methods=["GET"]))
    return app
