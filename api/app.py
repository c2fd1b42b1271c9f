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
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from threadpoolctl import threadpool_limits

from api.deps import Engine, EventSink, Services, error_detail
from api.monitoring import MetricsMiddleware, Ops, catalog_version
from api.routes import api_router
from recommender.adapters.feedback_store import FeedbackStore, RatingCache
from recommender.adapters.kafka import EventProducer
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.catalog import Catalog
from recommender.core.errors import ConfigError, ZmotError
from recommender.core.runtime import resolve_runtime
from recommender.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from recommender.core.offers import OfferCatalog

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


def load_offers_v2(settings: Settings, catalog: Catalog) -> OfferCatalog:
    """The offer catalog named by the settings (every catalog item when no offer file)."""
    from recommender.core.offers import catalog_offers, load_offer_catalog

    if settings.offers_path is not None:
        offers = load_offer_catalog(settings.offers_path, catalog if len(catalog) else None)
    else:
        offers = catalog_offers(catalog)
    if not len(offers):
        raise ConfigError(
            "no offers: set ZMOT_OFFERS_PATH to offers.jsonl or ZMOT_CATALOG_PATH to a catalog"
        )
    return offers


def reload_engine(engine: Engine, settings: Settings) -> Engine:
    """The engine with offers and placements read again (model and catalog kept)."""
    from recommender.core.placements import load_placements

    if engine.arbiter is None:
        raise ConfigError("this engine has no offer catalog to reload")
    offers = load_offers_v2(settings, engine.catalog)
    arbiter = engine.arbiter.with_offers(offers, load_placements(settings.placements_path))
    logger.info("offers reloaded: catalog %s, %d offers", offers.version, len(offers))
    return replace(engine, ranker=arbiter, arbiter=arbiter)


def load_engine(settings: Settings) -> Engine:
    """Model, catalog, offers, placements and the arbiter over them, from the settings."""
    # Imported here, after pin_blas_threads(), because they load numpy.
    from recommender.core.arbitration import Arbiter
    from recommender.core.model import Model
    from recommender.core.placements import load_placements

    if settings.model_dir is None:
        raise ConfigError("no model: set ZMOT_MODEL_DIR to a directory written by `zmot train`")
    model = Model.load(settings.model_dir)
    runtime = resolve_runtime(settings)
    catalog = Catalog.load(settings.catalog_path) if settings.catalog_path else Catalog()
    offers = load_offers_v2(settings, catalog)
    arbiter = Arbiter(
        model, catalog, offers, load_placements(settings.placements_path), runtime.arbitration
    )
    logger.info(
        "model %s loaded: %d items, %d offers (catalog %s)",
        model.version,
        len(catalog),
        len(offers),
        offers.version,
    )
    return Engine(
        model_version=model.version,
        catalog=catalog,
        ranker=arbiter,
        arbiter=arbiter,
        half_life_s=runtime.half_life_s,
    )


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    producer: EventSink | None = None,
) -> FastAPI:
    """The API app; ``engine`` and ``producer`` replace the real ones (tests), else built."""
    settings = settings or get_settings()
    ops = Ops(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(pin_blas_threads())
            try:
                services = await _open_services(settings, stack, engine, producer)
            except ZmotError as exc:
                logger.error("cannot start the API: %s", exc)
                raise
            services = replace(services, ops=ops)
            n_offers = len(getattr(services.engine.ranker, "offers", ()))
            ops.metrics.set_versions(
                services.engine.model_version, catalog_version(settings), n_offers
            )
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
    app.state.ops = ops
    app.add_middleware(MetricsMiddleware, metrics=ops.metrics)
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
    feedback = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
    if producer is None:
        kafka = EventProducer(settings.kafka_bootstrap, settings.events_topic)
        await kafka.start()
        stack.push_async_callback(kafka.stop)
        producer = kafka
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        producer=producer,
        feedback=feedback,
        ratings=RatingCache(feedback),
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


async def _redis_down(request: Request, exc: Exception) -> JSONResponse:
    request.app.state.ops.metrics.redis_errors.inc()
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
