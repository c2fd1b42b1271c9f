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

Such a version is served once profiles built its way are live (blue/green profiles,
:mod:`recommender.core.generations`): each look also reads the generations record, and when
another generation became live the swap replaces the engine *and* the profile stores in the
same single assignment, so no request reads new profiles with the old model or the reverse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from api.engine import Engine, reload_engine, swap_model
from recommender.adapters.generation_store import GenerationStore
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import ProfileStore
from recommender.core.errors import CatalogError, ConfigError, ZmotError
from recommender.core.generations import Generation, GenerationState
from recommender.core.registry import Located, PointerWatch, Registry, is_artifact

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
        self.generations = GenerationStore(
            services.store.client, settings.redis_prefix, settings.consumer_group
        )
        self.profiles: GenerationState | None = None
        """The generations record as last read (None before the first look or without a
        registry to follow)."""
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

    async def reload_offers(self) -> Engine:
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
            switched = await self._follow_generation()
            if switched is not None:
                return switched
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

    async def _follow_generation(self) -> SwapResult | None:
        """Serve the live profile generation: swap model and profile stores when another one
        became live; keep the privacy store deleting from a rebuild in progress too."""
        try:
            state = await self.generations.state()
        except (RedisError, OSError, ZmotError) as exc:
            logger.warning("cannot read the profile generations (%s); keeping the served ones", exc)
            return None
        self.profiles = state
        services = self.state.services
        services.ops.group = state.live.group  # lag is the live generation's
        settings = services.settings
        rebuilding = (state.rebuild.prefix,) if state.rebuild is not None else ()
        served = services.generation or self.generations.original
        if state.live.name == served.name:
            if services.privacy.also_delete != rebuilding:
                self.state.services = dataclasses.replace(
                    services, privacy=self._privacy(services, served, rebuilding)
                )
            return None
        version = state.live.version
        model_dir = settings.model_dir
        if version is None or model_dir is None or is_artifact(model_dir):
            self.refused = f"cannot serve {state.live.describe()}: ZMOT_MODEL_DIR is no registry"
            logger.error("%s", self.refused)
            return None
        engine = services.engine
        located = Located(Registry(model_dir).path_of(version), version, registry=True)
        try:
            new, _ = await asyncio.to_thread(
                swap_model, engine, settings, located, profiles_rebuilt=True
            )
        except ZmotError as exc:
            self.refused = f"model {version} of {state.live.describe()} not loaded: {exc}"
            logger.error("%s; still serving %s", self.refused, engine.model_version)
            return None
        services = self.state.services  # a reload of offers may have replaced them meanwhile
        store = ProfileStore(services.store.client, state.live.prefix, services.store.ttl_ms / 1e3)
        self.state.services = dataclasses.replace(
            services,
            engine=new,
            store=store,
            privacy=self._privacy(services, state.live, rebuilding),
            generation=state.live,
        )
        assert self.watch is not None  # check() only gets here with a watch
        self.watch.served(located)
        self.refused = None
        services.ops.engine_loaded(new)
        services.ops.metrics.model_swaps.inc()
        logger.warning(
            "profiles of %s live: model %s now serving (was %s)",
            state.live.describe(),
            new.model_version,
            engine.model_version,
        )
        return SwapResult(new.model_version, previous=engine.model_version)

    @staticmethod
    def _privacy(services: Any, live: Generation, rebuilding: tuple[str, ...]) -> PrivacyStore:
        old = services.privacy
        return PrivacyStore(old.client, old.prefix, live.prefix, rebuilding, mux=old.mux)

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
