"""The worker's side of a model swap: follow the registry's pointer and check the profile math.

The worker uses a model only for the way profiles are built (feature config, half-life,
top-N, memories). A newly activated version with the same configs needs nothing from the
worker: the profiles it writes are already the ones that version reads, so the watch only
records the version (log line and ``zmot_worker_model_info``). A version with other configs
would need profiles rebuilt its way; the worker keeps building them the old way (changing the
math mid-stream would leave every profile half one and half the other) and says so loudly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recommender.adapters.metrics import WorkerMetrics
from recommender.core.errors import ZmotError
from recommender.core.registry import Located, PointerWatch, compatibility, locate
from recommender.core.runtime import read_model_meta

log = logging.getLogger(__name__)


class WorkerModelWatch:
    """Looks at the pointer when asked; :meth:`check` is the faust timer's body."""

    def __init__(
        self,
        model_dir: Path,
        metrics: WorkerMetrics | None = None,
        serving: Located | None = None,
    ) -> None:
        """``serving``: the version whose math the worker applies when it is not the one the
        pointer names (a worker building a rebuilt generation's profiles)."""
        located = serving or locate(model_dir)
        self.watch = PointerWatch(model_dir, located)
        self.meta: dict[str, Any] = read_model_meta(located.path)
        """The meta of the version whose profile math the worker applies."""
        self.version = located.version
        self.metrics = metrics
        self.refused: str | None = None
        self._publish(located.version)

    def _publish(self, version: str) -> None:
        if self.metrics is not None:
            self.metrics.model_info.clear()
            self.metrics.model_info.labels(version).set(1)

    def check(self) -> Located | None:
        """The newly activated version when it was taken over, else None."""
        try:
            located = self.watch.changed()
        except ZmotError as exc:
            log.error("cannot read the model pointer: %s", exc)
            return None
        if located is None:
            return None
        try:
            verdict = compatibility(self.meta, read_model_meta(located.path))
        except ZmotError as exc:
            log.error("model %s unreadable, profiles stay as they are: %s", located.version, exc)
            return None
        if not verdict.compatible:
            self.refused = located.version
            log.error(
                "model %s activated, but %s; the worker keeps building profiles for %s "
                "(rebuild profiles for the new one: README, Model registry)",
                located.version,
                verdict.describe(),
                self.version,
            )
            return None
        self.watch.served(located)
        log.info(
            "model %s active (was %s): same profile math, nothing to change",
            located.version,
            self.version,
        )
        self.version = located.version
        self.refused = None
        self._publish(located.version)
        return located
