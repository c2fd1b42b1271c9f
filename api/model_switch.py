"""Hot swap of the served model: watch the registry pointer, load off the loop, swap in one step.

Requests take ``app.state.services`` once (the ``ServicesDep`` dependency) and use that
object to the end, so a request in flight finishes on the engine it started with; the swap
replaces ``app.state.services`` by a copy holding the new engine, in one assignment on the
event loop. Loading the new model (files, tables) runs in a thread, so requests keep being
answered meanwhile.

A new version whose feature config or profile math differs from the served one's is refused
(:func:`recommender.core.registry.compatibility`): it would read live profiles with the wrong
features. The refusal is logged, counted and shown by ``/readyz``; the old model keeps serving.

The offer, placement and experiment files are watched the same way (size and modification
time, every ``ZMOT_MODEL_POLL_S``): with ``zmot api --workers N`` an admin call reaches one
process only, and the others must not keep serving the old offers. A bad file is logged and
the old offers stay until the file changes again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.engine import reload_engine, swap_model
from recommender.core.errors import CatalogError, ConfigError, ZmotError
from recommender.core.registry import Located, PointerWatch

logger = logging.getLogger("zmot.api")


@dataclass(frozen=True)
class SwapResult:
    """What one look at the pointer did."""

    model_version: str
    """The version served after the look."""
    previous: str | None = None
    """The version swapped out (None: nothing swapped)."""
    refused: str | None = None
    """Why the pointed-at version was not swapped in (None: nothing refused)."""


class ModelSwitch:
    """Watches ``ZMOT_MODEL_DIR`` for a new current version and swaps it into ``state``."""

    def __init__(self, state: Any) -> None:
        self.state = state  # the app's ``state``: ``services`` and ``ops`` live there
        services = state.services
        located = services.engine.located
        self.watch = (
            None
            if located is None or services.settings.model_dir is None
            else PointerWatch(services.settings.model_dir, located)
        )
        self.lock = asyncio.Lock()
        self.refused: str | None = None
        """Why the last version pointed at was refused (None once a swap succeeds)."""
        settings = services.settings
        self.files = [
            path
            for path in (settings.offers_path, settings.placements_path, settings.experiments_path)
            if path is not None
        ]
        self.seen = file_signature(self.files)

    @property
    def watching(self) -> bool:
        """There is a registry pointer or an offer file to watch."""
        return self.watch is not None or bool(self.files)

    async def reload_offers(self) -> Any:
        """Read offers, placements and experiments again and serve them (model kept); the new
        engine. CatalogError or ConfigError for a bad file (the old offers keep serving)."""
        async with self.lock:  # a model swap in progress would put the old offers back
            self.seen = file_signature(self.files)
            services = self.state.services
            engine = reload_engine(services.engine, services.settings)
            self.state.services = dataclasses.replace(services, engine=engine)
        services.ops.engine_loaded(engine)
        return engine

    async def check_files(self) -> bool:
        """Reload the offers when one of their files changed since the last look (True)."""
        if file_signature(self.files) == self.seen:
            return False
        try:
            await self.reload_offers()
        except (CatalogError, ConfigError) as exc:
            logger.error("offer files changed but not reloaded: %s; old offers kept", exc)
            return False
        return True

    async def check(self) -> SwapResult:
        """Look at the pointer once; swap when it names a new compatible version."""
        async with self.lock:
            serving = self.state.services.engine.model_version
            if self.watch is None:
                return SwapResult(serving)
            located = self.watch.changed()
            if located is None:
                return SwapResult(serving, refused=self.refused)
            return await self._swap(located)

    async def _swap(self, located: Located) -> SwapResult:
        engine = self.state.services.engine
        settings = self.state.services.settings
        try:
            new, verdict = await asyncio.to_thread(swap_model, engine, settings, located)
        except ZmotError as exc:
            self.refused = f"model {located.version} not loaded: {exc}"
            logger.error("%s; still serving %s", self.refused, engine.model_version)
            return SwapResult(engine.model_version, refused=self.refused)
        if not verdict.compatible:
            self.refused = (
                f"model {located.version} refused, {verdict.describe()}: rebuild profiles "
                "for it (README, Model registry) before activating it"
            )
            logger.error("%s; still serving %s", self.refused, engine.model_version)
            return SwapResult(engine.model_version, refused=self.refused)
        # Read services again: a reload of offers may have replaced them while loading.
        services = self.state.services
        self.state.services = dataclasses.replace(services, engine=new)
        assert self.watch is not None  # check() only gets here with a watch
        self.watch.served(located)
        self.refused = None
        services.ops.engine_loaded(new)
        services.ops.metrics.model_swaps.inc()
        logger.info("model %s now serving (was %s)", new.model_version, engine.model_version)
        return SwapResult(new.model_version, previous=engine.model_version)

    async def run(self, interval_s: float) -> None:
        """Look at the pointer and the offer files every ``interval_s`` seconds until
        cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.check()
                await self.check_files()
            except Exception:  # a watcher that dies silently would leave a stale model
                logger.exception("model watch failed; trying again in %g s", interval_s)


def file_signature(paths: list[Path]) -> tuple[tuple[int, int] | None, ...]:
    """(modification time in ns, size) of each file; None for one that is missing."""
    out: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            out.append(None)
        else:
            out.append((stat.st_mtime_ns, stat.st_size))
    return tuple(out)
