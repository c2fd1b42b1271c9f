"""The FastAPI application: start-up wiring, error mapping and the routes.

Start-up (the lifespan) pins BLAS to one thread, loads model, catalog and offers into an
:class:`~api.engine.Engine`, connects Redis and checks it, and starts the Kafka producer. Any
failure stops the start with a message naming the setting to fix: a server that cannot answer
correctly should not pretend to be up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.auth import KeyCors, access_from_settings
from api.blas import pin_blas_threads
from api.deps import EventLogUnavailable, EventSink, Services, error_detail
from api.engine import Engine, load_engine
from api.model_switch import ModelSwitch
from api.monitoring import MetricsMiddleware, Ops
from api.routes import api_router
from api.routes.offers_fast import FastOffers
from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.feedback_store import FeedbackStore, RatingCache
from recommender.adapters.kafka import DecisionLog, EventProducer, kafka_auth
from recommender.adapters.metrics import leave_multiprocess
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.rate_limit import RateLimiter
from recommender.adapters.redis_client import check as check_redis
from recommender.adapters.redis_client import check_layout, client_for, close
from recommender.adapters.redis_mux import mux_for
from recommender.adapters.redis_store import ProfileStore
from recommender.core.errors import ZmotError
from recommender.core.settings import Settings, get_settings, redact_url

logger = logging.getLogger("zmot.api")


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    producer: EventSink | None = None,
) -> FastAPI:
    """The API app; ``engine`` and ``producer`` replace the real ones (tests), else built."""
    settings = settings or get_settings()
    ops = Ops(settings)
    access = access_from_settings(settings)  # refuses to serve open off loopback

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(pin_blas_threads())
            stack.callback(leave_multiprocess)
            try:
                services = await _open_services(settings, stack, ops, engine, producer)
            except ZmotError as exc:
                logger.error("cannot start the API: %s", exc)
                raise
            ops.engine_loaded(services.engine)
            if access.keys is not None:
                access.limiter = RateLimiter(
                    settings.redis_url, settings.redis_prefix, cluster=settings.redis_cluster
                )
            app.state.services = services
            stack.callback(delattr, app.state, "services")
            switch = ModelSwitch(app.state)
            app.state.model_switch = switch
            if switch.watch is not None:
                await switch.check()  # serve the live profile generation from the start
            if switch.watching and settings.model_poll_s > 0:
                watcher = asyncio.create_task(switch.run(settings.model_poll_s))
                stack.push_async_callback(_cancelled, watcher)
            logger.info(
                "API ready: model %s, Redis %s, Kafka %s topic %s",
                services.engine.model_version,
                redact_url(settings.redis_url),
                settings.kafka_bootstrap,
                settings.events_topic,
            )
            yield

    app = FastAPI(
        title="zmot",
        summary="Real-time next-best-offer engine",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.openapi = partial(_openapi, app, settings.max_k)  # type: ignore[method-assign]
    app.state.ops = ops
    app.state.access = access
    app.add_middleware(KeyCors, access=access)
    app.add_middleware(MetricsMiddleware, metrics=ops.metrics)
    app.include_router(api_router)
    app.router.routes.insert(0, FastOffers())  # first: the hot path is matched first
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(RedisError, _redis_down)
    app.add_exception_handler(KafkaError, _kafka_down)
    app.add_exception_handler(EventLogUnavailable, _events_not_stored)
    return app


def _openapi(app: FastAPI, max_k: int) -> dict[str, Any]:
    """FastAPI's OpenAPI document with what only the settings know: ``k`` is at most
    ``ZMOT_MAX_K`` on both offer routes (so the document is as strict as the validation)."""
    if app.openapi_schema is None:
        doc = FastAPI.openapi(app)  # FastAPI's own document, cached in app.openapi_schema
        for path in doc.get("paths", {}).values():
            for operation in path.values():
                for param in operation.get("parameters", []):
                    if param.get("name") == "k":
                        _bound(param["schema"], max_k)
                body = operation.get("requestBody", {}).get("content", {})
                fields = body.get("application/json", {}).get("schema", {}).get("properties", {})
                if "k" in fields:
                    _bound(fields["k"], max_k)
        return doc
    return app.openapi_schema


def _bound(schema: dict[str, Any], maximum: int) -> None:
    """Set ``maximum`` on an integer schema (or on the integer branch of an ``anyOf``)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "integer":
            branch["maximum"] = maximum


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _open_services(
    settings: Settings,
    stack: AsyncExitStack,
    ops: Ops,
    engine: Engine | None,
    producer: EventSink | None,
) -> Services:
    engine = engine or load_engine(settings)
    client = client_for(settings)
    stack.push_async_callback(close, client)
    store = ProfileStore(client, settings.redis_prefix, settings.profile_ttl_days * 86400.0)
    await check_redis(client, settings)
    await check_layout(client, settings)
    feedback = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
    decision_log = None
    if producer is None:
        kafka = EventProducer(
            settings.kafka_bootstrap, settings.events_topic, auth=kafka_auth(settings)
        )
        await kafka.start()
        stack.push_async_callback(kafka.stop)
        producer = kafka
        if settings.decisions_topic:
            decision_log = DecisionLog(
                kafka,
                settings.decisions_topic,
                ops.metrics.decision_log_errors.inc,
                linger_ms=settings.decisions_linger_ms,
            )
            stack.push_async_callback(decision_log.drain)  # before the producer stops
    ratings = RatingCache(feedback)
    stack.push_async_callback(ratings.close)
    mux = mux_for(settings.redis_url, settings.redis_cluster)  # the served profiles' read
    if mux is not None:
        stack.push_async_callback(mux.aclose)
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        producer=producer,
        ops=ops,
        feedback=feedback,
        ratings=ratings,
        privacy=PrivacyStore(client, settings.redis_prefix, mux=mux),
        decisions=DecisionStore(client, settings.redis_prefix, settings.attribution_hours * 3600),
        decision_log=decision_log,
    )


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """Query and path errors in the same shape as event errors: field and reason."""
    assert isinstance(exc, RequestValidationError)
    detail: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        field = ".".join(loc[1:] if loc and loc[0] in {"query", "path", "body"} else loc)
        detail.append(error_detail(str(err.get("msg", "invalid")), field or None))
    return JSONResponse({"detail": detail}, status_code=422)


def _route(request: Request) -> str:
    """The route template of a request (``/v1/users/{user_id}``): logs never carry the
    client's own path text, so a newline in it cannot forge a log line."""
    return str(getattr(request.scope.get("route"), "path", "unmatched"))


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    request.app.state.ops.metrics.redis_errors.inc()
    logger.warning("Redis error on %s %s: %r", request.method, _route(request), exc)
    # The client learns what is down, not the addresses in the exception text (logged above).
    return JSONResponse(
        {"detail": f"profile store (Redis) unavailable ({type(exc).__name__}); try again"},
        status_code=503,
        headers=_retry_after(request.app.state.ops.settings),
    )


def _retry_after(settings: Settings) -> dict[str, str]:
    return {"Retry-After": str(settings.retry_after_s)}


async def _kafka_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Kafka error on %s %s: %r", request.method, _route(request), exc)
    return JSONResponse(
        {
            "detail": f"event log (Kafka) unavailable ({type(exc).__name__}); "
            "the events may or may not have been stored, retry them"
        },
        status_code=503,
        headers=_retry_after(request.app.state.ops.settings),
    )


async def _events_not_stored(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EventLogUnavailable)
    logger.warning("Kafka error on %s %s: %s", request.method, request.url.path, exc)
    cause = exc.cause
    what = "no acknowledgement in time" if isinstance(cause, TimeoutError) else type(cause).__name__
    return JSONResponse(
        {
            "detail": f"event log (Kafka) unavailable ({what}); the events may or may not have "
            "been stored: send them again with these event_ids and each counts once",
            "event_ids": exc.event_ids,
        },
        status_code=503,
        headers=_retry_after(request.app.state.ops.settings),
    )
