"""Start the stream worker: profile math from settings (or the model), Redis, then faust."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import faust

from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.logs import json_logging_config
from recommender.adapters.metrics import WorkerMetrics
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.catalog import Catalog
from recommender.core.errors import ModelError
from recommender.core.features import FeatureConfig
from recommender.core.profile import ProfileParams
from recommender.core.replay import Profiler
from recommender.core.settings import Settings
from stream.agents import BatchError, BatchStats, register_agent
from stream.app import create_app
from stream.monitoring import register_monitoring

log = logging.getLogger(__name__)

MODEL_META = "meta.json"

FATAL_EXIT_TIMEOUT_S = 30.0
"""Longest clean shutdown after a failed batch before the process exits hard."""

EXIT_FATAL = 70  # EX_SOFTWARE


def load_catalog(path: Path | None) -> Catalog:
    """The catalog named by the settings; empty when none is configured or the file is absent.

    A file that exists but cannot be read or parsed raises :class:`CatalogError` at start rather
    than serving profiles without the features the model was trained with.
    """
    if path is None:
        log.info("no catalog configured: events get no category or brand features")
        return Catalog()
    if not Path(path).exists():
        log.warning("catalog %s does not exist: events get no category or brand features", path)
        return Catalog()
    catalog = Catalog.load(Path(path))
    log.info("catalog %s: %d items", path, len(catalog))
    return catalog


def read_model_meta(model_dir: Path | None) -> dict[str, Any]:
    """The model's ``meta.json`` as a dict, or {} when there is no model to follow."""
    if model_dir is None:
        return {}
    path = Path(model_dir) / MODEL_META
    if not path.exists():
        log.info("no %s in %s: profile settings come from ZMOT_*", MODEL_META, model_dir)
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return meta


def build_profiler(settings: Settings) -> Profiler:
    """The profile math the worker applies, the same the model was trained with.

    Feature weights and decay come from the model's ``meta.json`` when it names them, so
    training and serving agree; otherwise from the settings and :class:`FeatureConfig` defaults.
    """
    features = FeatureConfig()
    params = ProfileParams(
        half_life_s=settings.half_life_s,
        top_n=settings.profile_top_n,
        purchase_memory=settings.purchase_memory,
        # Exposure is serving policy, not model input: always from the settings.
        exposure_keep_s=max(settings.cap_window_hours, settings.dismiss_window_hours) * 3600.0,
        exposure_memory=settings.exposure_memory,
    )
    meta = read_model_meta(settings.model_dir)
    where = f"{settings.model_dir}/{MODEL_META}"
    try:
        if "feature_config" in meta:
            features = FeatureConfig.from_dict(meta["feature_config"])
            log.info("feature config from %s", where)
        if "profile_params" in meta:
            raw = meta["profile_params"]
            model_params = replace(
                params,
                half_life_s=float(raw["half_life_s"]),
                top_n=int(raw["top_n"]),
                purchase_memory=int(raw["purchase_memory"]),
            )
            if model_params != params:
                log.warning(
                    "profile params of the model %s override the settings %s", model_params, params
                )
            params = model_params
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelError(f"{where}: bad feature_config or profile_params ({exc!r})") from exc
    return Profiler(load_catalog(settings.catalog_path), features, params)


def run_worker(settings: Settings, *, loglevel: str = "info", web_enabled: bool = True) -> None:
    """Run the stream worker until SIGTERM/SIGINT; raise if it had to stop on a failed batch.

    Fails fast (before joining the consumer group) on an unreadable catalog or model meta and
    on an unreachable Redis.
    """
    profiler = build_profiler(settings)
    client = connect(settings.redis_url)
    store = ProfileStore(client, settings.redis_prefix, settings.profile_ttl_days * 86400.0)
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
    )
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
            "worker stopped: consumed=%d applied=%d replayed=%d dead_lettered=%d",
            stats.consumed,
            stats.applied,
            stats.replayed,
            stats.dead_lettered,
        )
