"""The FastAPI application: start-up wiring, error mapping and the routes.

Start-up (the lifespan) pins BLAS to one thread, loads model, catalog and offers into an
:class:`~api.deps.Engine`, connects Redis and checks it, and starts the Kafka producer. Any
failure stops the start with a message naming the setting to fix: a server that cannot answer
correctly should not pretend to be up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from threadpoolctl import threadpool_limits

from api.deps import Engine, EventSink, Services, error_detail
from api.routes import api_router
from recommender.adapters.kafka import EventProducer
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.catalog import Catalog, load_offers, offers_from_catalog
from recommender.errors import ConfigError, ZmotError
from recommender.settings import Settings, get_settings

logger = logging.getLogger("zmot.api")

BLAS_ENV_VARS = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def pin_blas_threads() -> Callable[[], None]:
    """Limit BLAS/OpenMP to one thread in this process; returns a function that undoes it.

    A serving process gets its parallelism from concurrent requests, not from threads inside
    one small matrix-vector product: with default threading two processes on two cores served
    ~8x fewer requests (design notes). The variables are set first so that a BLAS loaded after
    this never starts its pool; threadpoolctl then resizes one that is already loaded.
    """
    saved = {var: os.environ.get(var) for var in BLAS_ENV_VARS}
    for var in BLAS_ENV_VARS:
        os.environ[var] = "1"
    import numpy  # noqa: F401  (loads BLAS now, so threadpoolctl sees it)

    limiter = threadpool_limits(limits=1)

    def restore() -> None:
        limiter.restore_original_limits()
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value

    return restore


def load_engine(settings: Settings) -> Engine:
    """Model, catalog, offers and the ranker over them, from the paths in the settings."""
    # Imported here, after pin_blas_threads(), because they load numpy.
    from recommender.model import Model
    from recommender.scoring import OfferRanker

    if settings.model_dir is None:
        raise ConfigError("no model: set ZMOT_MODEL_DIR to a directory written by `zmot train`")
    model = Model.load(settings.model_dir)
    catalog = Catalog.load(settings.catalog_path) if settings.catalog_path else Catalog()
    if settings.offers_path is not None:
        offers = load_offers(settings.offers_path, catalog if len(catalog) else None)
    else:
        offers = offers_from_catalog(catalog)
    if not offers:
        raise ConfigError(
            "no offers: set ZMOT_OFFERS_PATH to offers.jsonl or ZMOT_CATALOG_PATH to a catalog"
        )
    boost = settings.recent_item_boost
    ranker = OfferRanker(
        model,
        catalog,
        offers,
        purchase_exclusion_s=settings.purchase_exclusion_days * 86400.0,
        recent_boost=model.recent_boost if boost is None else boost,
    )
    logger.info("model %s loaded: %d items, %d offers", model.version, len(catalog), len(offers))
    return Engine(model_version=model.version, catalog=catalog, ranker=ranker)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    producer: EventSink | None = None,
) -> FastAPI:
    """The API app; ``engine`` and ``producer`` replace the real ones (tests), else built."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(pin_blas_threads())
            try:
                services = await _open_services(settings, stack, engine, producer)
            except ZmotError as exc:
                logger.error("cannot start the API: %s", exc)
                raise
            app.state.services = services
            stack.callback(delattr, app.state, "services")
            logger.info(
                "API ready: model %s, Redis %s, Kafka %s topic %s",
                services.engine.model_version,
                settings.redis_url,
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
    app.include_router(api_router)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(RedisError, _redis_down)
    app.add_exception_handler(KafkaError, _kafka_down)
    return app


async def _open_services(
    settings: Settings,
    stack: AsyncExitStack,
    engine: Engine | None,
    producer: EventSink | None,
) -> Services:
    engine = engine or load_engine(settings)
    client = connect(settings.redis_url)
    stack.push_async_callback(client.aclose, True)
    store = ProfileStore(client, settings.redis_prefix, settings.profile_ttl_days * 86400.0)
    await store.check()
    if producer is None:
        kafka = EventProducer(settings.kafka_bootstrap, settings.events_topic)
        await kafka.start()
        stack.push_async_callback(kafka.stop)
        producer = kafka
    return Services(settings=settings, engine=engine, store=store, producer=producer)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """Query and path errors in the same shape as event errors: field and reason."""
    assert isinstance(exc, RequestValidationError)
    detail: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        field = ".".join(loc[1:] if loc and loc[0] in {"query", "path", "body"} else loc)
        detail.append(error_detail(str(err.get("msg", "invalid")), field or None))
    return JSONResponse({"detail": detail}, status_code=422)


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Redis error on %s %s: %r", request.method, request.url.path, exc)
    # The client learns what is down, not the addresses in the exception text (logged above).
    return JSONResponse(
        {"detail": f"profile store (Redis) unavailable ({type(exc).__name__}); try again"},
        status_code=503,
    )


async def _kafka_down(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Kafka error on %s %s: %r", request.method, request.url.path, exc)
    return JSONResponse(
        {
            "detail": f"event log (Kafka) unavailable ({type(exc).__name__}); "
            "the events may or may not have been stored, retry them"
        },
        status_code=503,
    )
