"""Start the stream worker: profile math from settings (or the model), Redis, then faust."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from functools import partial
from pathlib import Path

import faust

from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.generation_store import GenerationStore
from recommender.adapters.kafka import kafka_auth
from recommender.adapters.logs import json_logging_config
from recommender.adapters.metrics import WorkerMetrics
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_client import check as check_redis
from recommender.adapters.redis_client import check_layout, client_for
from recommender.adapters.redis_store import ProfileStore
from recommender.core.catalog import load_catalog
from recommender.core.errors import ModelError
from recommender.core.features import catalog_search_features
from recommender.core.generations import Generation
from recommender.core.registry import Located, Registry, is_artifact
from recommender.core.replay import Profiler
from recommender.core.runtime import resolve_runtime
from recommender.core.settings import Settings
from stream.agents import register_agent
from stream.app import create_app
from stream.batch import BatchError, BatchStats
from stream.generation_watch import GenerationWatch, measure
from stream.model_watch import WorkerModelWatch
from stream.monitoring import register_monitoring
from stream.offsets import AppliedOffsets

log = logging.getLogger(__name__)

FATAL_EXIT_TIMEOUT_S = 30.0
"""Longest clean shutdown after a failed batch before the process exits hard."""

EXIT_FATAL = 70  # EX_SOFTWARE

GENERATION_POLL_S = 2.0
"""Longest time between two looks at the profile generations record (and, in a rebuilding
worker, at its lag on the broker)."""


GC_THRESHOLDS = (50_000, 10, 10)
"""The worker's collector thresholds (Python's default: 700, 10, 10); :func:`tune_gc`."""


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for the worker's batches, once set up.

    A young collection walks the references of every young container, and a batch's
    containers (its records, the per-user and per-position maps, the profiles' dicts) hold
    thousands: at the default threshold of 700 net allocations, collections came every ~80
    events and cost the worker a quarter of its CPU draining full profiles (2.8 of ~10 s per
    300k events, ``gc.callbacks``, BENCHMARKS.md "Issue 12, worker: writes in chunks"). At
    50,000 they cost ~0.2 s. Nearly everything a batch creates is freed by reference
    counting anyway; the collector only finds cycles, and they wait a little longer.
    What start-up built (modules, the catalog, the profile math) is frozen out of the
    collections: it lives as long as the process (a new generation or model restarts it).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def build_profiler(settings: Settings) -> Profiler:
    """The profile math the worker applies, the same the model was trained with
    (:func:`recommender.core.runtime.resolve_runtime`)."""
    runtime = resolve_runtime(settings)
    return Profiler(load_catalog(settings.catalog_path), runtime.features, runtime.profile)


def _watch_model(
    app: faust.App,
    model_dir: Path,
    every_s: float,
    metrics: WorkerMetrics,
    serving: Located | None = None,
) -> None:
    """Follow the registry's pointer every ``every_s`` seconds (:mod:`stream.model_watch`)."""
    try:
        watch = WorkerModelWatch(model_dir, metrics, serving)
    except ModelError as exc:  # no model yet: profiles follow the settings, nothing to watch
        log.info("no model to watch at %s: %s", model_dir, exc)
        return

    async def check_model() -> None:
        watch.check()

    app.timer(every_s, name="zmot.model")(check_model)


async def _generation(generations: GenerationStore, rebuild: bool) -> tuple[Generation, bool]:
    """The generation this worker builds, and whether it is a rebuild (``--rebuild`` joins
    the running rebuild, or the live generation when none runs)."""
    state = await generations.state()
    if rebuild and state.rebuild is not None:
        return state.rebuild, True
    if rebuild:
        log.warning("no profile rebuild running: this worker builds the live profiles")
    return state.live, False


def generation_settings(
    settings: Settings, generation: Generation
) -> tuple[Settings, Located | None]:
    """The settings of a worker building ``generation``: its consumer group, and the profile
    math of its model version (the registry's artifact of that version)."""
    if generation.original or generation.version is None:
        return settings, None
    if settings.model_dir is None or is_artifact(settings.model_dir):
        raise ModelError(
            f"profiles of {generation.describe()} need the model registry (ZMOT_MODEL_DIR) "
            "holding that version"
        )
    path = Registry(settings.model_dir).path_of(generation.version)
    if not is_artifact(path):
        raise ModelError(f"{generation.describe()}: version missing from {settings.model_dir}")
    pinned = settings.model_copy(update={"consumer_group": generation.group, "model_dir": path})
    return pinned, Located(path, generation.version, registry=True)


def run_worker(
    settings: Settings,
    *,
    loglevel: str = "info",
    web_enabled: bool = True,
    rebuild: bool = False,
) -> None:
    """Run the stream worker until SIGTERM/SIGINT; raise if it had to stop on a failed batch.

    Fails fast (before joining the consumer group) on an unreadable catalog or model meta and
    on an unreachable Redis. ``rebuild``: build the profiles of the rebuild in progress
    (README, Blue/green profiles). A worker whose generation stops being live restarts itself
    (the same command line) into the live one.
    """
    client = client_for(settings)
    generations = GenerationStore(client, settings.redis_prefix, settings.consumer_group)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(check_redis(client, settings))
        loop.run_until_complete(check_layout(client, settings))
        generation, rebuilding = loop.run_until_complete(_generation(generations, rebuild))
    except BaseException:
        loop.close()
        raise
    asyncio.set_event_loop(loop)
    registry_dir = settings.model_dir
    settings, pinned = generation_settings(settings, generation)
    log.info("building %s%s", generation.describe(), " (rebuild)" if rebuilding else "")
    profiler = build_profiler(settings)
    store = ProfileStore(
        client,
        generation.prefix,
        settings.profile_ttl_days * 86400.0,
        pack_level=settings.profile_pack_level,
        cache_size=settings.worker_profile_cache,
        write_chunk=settings.worker_write_chunk,
        shared_text=catalog_search_features(profiler.catalog.items.values()),
    )
    feedback = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)

    app = create_app(settings, web_enabled=web_enabled)
    fatal: list[BaseException] = []

    def on_fatal(exc: BaseException) -> None:
        # The signal takes faust's own clean shutdown path (commit what is acked, leave group);
        # the watchdog ends the process should that path hang.
        if not fatal:
            fatal.append(exc)
            watchdog = threading.Timer(FATAL_EXIT_TIMEOUT_S, os._exit, (EXIT_FATAL,))
            watchdog.daemon = True
            watchdog.start()
            os.kill(os.getpid(), signal.SIGTERM)

    stats = BatchStats()
    metrics = WorkerMetrics()
    register_agent(
        app,
        settings,
        profiler=profiler,
        store=store,
        stats=stats,
        on_fatal=on_fatal,
        metrics=metrics,
        feedback=feedback,
        privacy=PrivacyStore(client, settings.redis_prefix),
        applied=AppliedOffsets(feedback, settings.events_topic),
        decisions=DecisionStore(client, settings.redis_prefix, settings.attribution_hours * 3600),
    )
    if registry_dir is not None and settings.model_poll_s > 0:
        _watch_model(app, registry_dir, settings.model_poll_s, metrics, pinned)
    retired: list[str] = []

    def on_retired(why: str) -> None:
        retired.append(why)
        os.kill(os.getpid(), signal.SIGTERM)

    watch = GenerationWatch(
        generations,
        generation,
        rebuilding=rebuilding,
        max_lag=settings.rebuild_max_lag,
        retired_ttl_s=settings.retired_profiles_ttl_s,
        resweep_after_s=2 * GENERATION_POLL_S + settings.batch_timeout_s + 10.0,
        measure_lag=partial(
            measure,
            settings.kafka_bootstrap,
            settings.events_topic,
            generation.group,
            kafka_auth(settings),
        ),
        on_retired=on_retired,
        model_dir=registry_dir,
    )
    every_s = min(GENERATION_POLL_S, settings.model_poll_s or GENERATION_POLL_S)
    app.timer(every_s, name="zmot.generation")(watch.tick)
    if web_enabled:
        register_monitoring(app, settings, metrics)
    logging_config = (
        json_logging_config(loglevel.upper(), "ext://sys.stdout")
        if settings.log_format == "json"
        else None
    )
    worker = faust.Worker(app, loglevel=loglevel, loop=loop, logging_config=logging_config)
    tune_gc()
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if fatal:
            raise BatchError(f"worker stopped after a failed batch: {fatal[0]}") from fatal[0]
        if exit_.code not in (0, None):
            raise
    finally:
        log.info(
            "worker stopped: consumed=%d applied=%d replayed=%d dead_lettered=%d withheld=%d",
            stats.consumed,
            stats.applied,
            stats.replayed,
            stats.dead_lettered,
            stats.withheld,
        )
    if retired and not fatal:
        restart_self(retired[0])


def restart_self(why: str) -> None:
    """Replace this process by a fresh run of its own command line (same pid, so a
    supervisor sees no exit): faust cannot join another consumer group in-process."""
    log.warning("restarting (%s): %s", why, " ".join(sys.orig_argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)
