"""The worker's side of blue/green profiles (:mod:`recommender.core.generations`).

A worker builds one generation of profiles: the live one, or the rebuild in progress
(``zmot worker --rebuild``). Its faust timer calls :meth:`GenerationWatch.tick`:

- a rebuilding worker measures its consumer group's lag on the broker, records it (`zmot
  model show`, the ops page) and, once the lag is at most ``ZMOT_REBUILD_MAX_LAG``, makes its
  generation the live one in one atomic step, moves the registry's ``current`` pointer to its
  model version and sweeps the old profiles into expiry. It then simply goes on as a live
  worker: same group, same prefix, nothing to hand over, so no event is lost at the switch;
- a live worker whose generation is no longer the live one (a rebuild became live) stops and
  starts again into the new one (``on_retired``), and sweeps retired prefixes whose second
  sweep is due (writes of the old workers between the switch and their stop renew the TTL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.exceptions import RedisError

from recommender.adapters.generation_store import GenerationStore
from recommender.adapters.kafka import KafkaAuth, read_partition_offsets
from recommender.core.errors import ZmotError
from recommender.core.generations import Generation, Progress, caught_up
from recommender.core.ops import lag_document
from recommender.core.registry import Registry, is_artifact

log = logging.getLogger(__name__)


async def measure(bootstrap: str, topic: str, group: str, auth: KafkaAuth) -> Progress:
    """The group's lag on ``topic`` (messages not committed; retention-deleted ones are not
    lag) and the topic's readable size, from the broker."""
    offsets = await read_partition_offsets(bootstrap, group, topic, timeout_s=0.0, auth=auth)
    now = time.time()
    lag = int(lag_document(group, topic, offsets, now)["total_lag"])
    end = sum(max(0, o.end - o.beginning) for o in offsets.values())
    return Progress(lag, end, now)


class GenerationWatch:
    """Keeps one worker process on the right generation; see the module doc."""

    def __init__(
        self,
        store: GenerationStore,
        mine: Generation,
        *,
        rebuilding: bool,
        max_lag: int,
        retired_ttl_s: float,
        resweep_after_s: float,
        measure_lag: Callable[[], Awaitable[Progress]],
        on_retired: Callable[[str], None],
        model_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.mine = mine
        self.rebuilding = rebuilding
        self.max_lag = max_lag
        self.retired_ttl_s = retired_ttl_s
        self.resweep_after_s = resweep_after_s
        self.measure_lag = measure_lag
        self.on_retired = on_retired
        self.model_dir = model_dir
        self.stopping = False

    async def tick(self) -> None:
        """One look at the record; never raises for Redis or broker trouble (next tick)."""
        if self.stopping:
            return
        try:
            await self._tick()
        except (RedisError, OSError, ZmotError) as exc:
            log.warning("profile generation check failed (%s); trying again", exc)
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must not stop the worker
            log.warning("profile generation check failed (%r); trying again", exc)

    async def _tick(self) -> None:
        state = await self.store.state()
        if self.rebuilding:
            if state.rebuild is not None and state.rebuild.name == self.mine.name:
                await self._rebuild_step()
                return
            if state.live.name == self.mine.name:
                self.rebuilding = False  # another worker of this rebuild switched
                self.mine = state.live
                log.info("profiles of %s are live now", self.mine.describe())
            else:
                self._retire(f"the rebuild of {self.mine.describe()} was cancelled")
                return
        elif state.live.name != self.mine.name:
            self._retire(
                f"profiles switched to {state.live.describe()}; this worker built "
                f"{self.mine.describe()}"
            )
            return
        now = time.time()
        for retired in state.retired:
            if retired.sweep_due(now, self.resweep_after_s):
                touched = await self.store.sweep(retired, now)
                log.info("old profiles under %r: %d keys set to expire", retired.prefix, touched)

    async def _rebuild_step(self) -> None:
        progress = await self.measure_lag()
        await self.store.record_progress(self.mine, progress)
        log.info(
            "rebuild of %s: lag %d of %d messages", self.mine.describe(), progress.lag, progress.end
        )
        if not caught_up(progress.lag, self.max_lag):
            return
        old = await self.store.switch(self.mine, self.retired_ttl_s)
        if old is None:
            return  # the record changed: the next tick sees how
        self.rebuilding = False
        log.warning(
            "profile rebuild caught up (lag %d <= %d): %s is live, %s retired",
            progress.lag,
            self.max_lag,
            self.mine.describe(),
            old.describe(),
        )
        self._activate_model()
        state = await self.store.state()
        for retired in state.retired:
            if retired.prefix == old.prefix:
                touched = await self.store.sweep(retired)
                log.info("old profiles under %r: %d keys set to expire", old.prefix, touched)

    def _activate_model(self) -> None:
        """Point the registry at the generation's version (what restarts load, what `zmot
        model list` shows); the API follows the generation record, not only this pointer."""
        version = self.mine.version
        if self.model_dir is None or version is None or is_artifact(self.model_dir):
            return
        registry = Registry(self.model_dir)
        if registry.current() != version:
            registry.activate(version)
            log.info("registry: %s is the current model", version)

    def _retire(self, why: str) -> None:
        self.stopping = True
        log.warning("%s: stopping to restart into the live generation", why)
        self.on_retired(why)
