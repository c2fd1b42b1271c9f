"""Start the stream worker: profile math from settings (or the model), Redis, then faust."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

import faust

from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.logs import json_logging_config
from recommender.adapters.metrics import WorkerMetrics
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.catalog import load_catalog
from recommender.core.errors import ModelError
from recommender.core.replay import Profiler
from recommender.core.runtime import resolve_runtime
from recommender.core.settings import Settings
from stream.agents import register_agent
from stream.app import create_app
from stream.batch import BatchError, BatchStats
from stream.model_watch import WorkerModelWatch
from stream.monitoring import register_monitoring
from stream.offsets import AppliedOffsets

log = logging.getLogger(__name__)

FATAL_EXIT_TIMEOUT_S = 30.0
"""Longest clean shutdown after a failed batch before the process exits hard."""

EXIT_FATAL = 70  # EX_SOFTWARE


def build_profiler(settings: Settings) -> Profiler:
    """The profile math the worker applies, the same the model was trained with
    (:func:`recommender.core.runtime.resolve_runtime`)."""
    runtime = resolve_runtime(settings)
    return Profiler(load_catalog(settings.catalog_path), runtime.features, runtime.profile)


def _watch_model(app: faust.App, model_dir: Path, every_s: float, metrics: WorkerMetrics) -> None:
    """Follow the registry's pointer every ``every_s`` seconds (:mod:`stream.model_watch`)."""
    try:
        watch = WorkerModelWatch(model_dir, metrics)
    except ModelError as exc:  # no model yet: profiles follow the settings, nothing to watch
        log.info("no model to watch at %s: %s", model_dir, exc)
        return

    async def check_model() -> None:
        watch.check()

    app.timer(every_s, name="zmot.model")(check_model)


def run_worker(settings: Settings, *, loglevel: str = "info", web_enabled: bool = True) -> None:
    """Run the stream worker until SIGTERM/SIGINT; raise if it had to stop on a failed batch.

    Fails fast (before joining the consumer group) on an unreadable catalog or model meta and
    on an unreachable Redis.
    """
    profiler = build_profiler(settings)
    client = connect(settings.redis_url)
    store = ProfileStore(
        client,
        settings.redis_prefix,
        settings.profile_ttl_days * 86400.0,
        pack_level=settings.profile_pack_level,
        cache_size=settings.worker_profile_cache,
    )
    feedback = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(store.check())
    except BaseException:
        loop.close()
        raise
    asyncio.set_event_loop(loop)

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
    if settings.model_dir is not None and settings.model_poll_s > 0:
        _watch_model(app, settings.model_dir, settings.model_poll_s, metrics)
    if web_enabled:
        register_monitoring(app, settings, metrics)
    logging_config = (
        json_logging_config(loglevel.upper(), "ext://sys.stdout")
        if settings.log_format == "json"
        else None
    )
    worker = faust.Worker(app, loglevel=loglevel, loop=loop, logging_config=logging_config)
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
