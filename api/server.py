"""Run the API with uvicorn: ``run_api(settings)`` or ``python -m api.server``."""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import tempfile
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from api.app import create_app
from api.auth import access_from_settings
from api.blas import single_thread_env
from recommender.adapters.logs import json_logging_config
from recommender.core.settings import Settings, get_settings


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging set-up, with zmot's own loggers on the same handler (JSON lines for
    every logger when ``log_format`` is ``json``)."""
    if log_format == "json":
        return json_logging_config(level.upper())
    config = copy.deepcopy(LOGGING_CONFIG)
    zmot = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    config["loggers"]["zmot"] = zmot
    return config


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings from the environment."""
    return create_app(get_settings())


def run_api(
    settings: Settings | None = None,
    *,
    workers: int = 1,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Serve the API on ``settings.api_host:api_port`` until interrupted.

    Each worker process is pinned to one BLAS thread (see :func:`api.blas.pin_blas_threads`), so
    ``workers`` should not exceed the cores left over by Redis, Kafka and the stream worker.
    The access log is off by default: it costs more CPU per request than scoring does.
    """
    settings = settings or get_settings()
    access_from_settings(settings)  # refuse to serve open off loopback before binding
    os.environ.update(single_thread_env())  # inherited by uvicorn's worker processes
    target: FastAPI | str
    metrics_dir = ""
    if workers == 1:
        target = create_app(settings)
    else:
        # Worker processes cannot be handed an object: they rebuild the settings from env.
        os.environ.update(settings.to_env())
        target = "api.server:app_from_env"
        # one /metrics for all of them: each writes its values there (adapters.metrics)
        metrics_dir = tempfile.mkdtemp(prefix=f"zmot-api-{settings.api_port}-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            target,
            host=settings.api_host,
            port=settings.api_port,
            factory=workers != 1,
            workers=workers,
            lifespan="on",
            access_log=access_log,
            limit_concurrency=settings.api_concurrency,
            timeout_graceful_shutdown=settings.api_shutdown_timeout_s,
            log_level=log_level,
            log_config=log_config(log_level, settings.log_format),
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m api.server [--workers N] [--access-log]`` with ``ZMOT_*`` settings."""
    parser = argparse.ArgumentParser(prog="python -m api.server", description=__doc__)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    run_api(workers=args.workers, access_log=args.access_log, log_level=args.log_level)


if __name__ == "__main__":
    main()
