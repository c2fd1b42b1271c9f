"""Profile generations (blue/green profiles): which profiles are live, which are being rebuilt.

A model whose feature config or profile math differs from the live profiles' cannot read them
(:func:`recommender.core.registry.compatibility`). It gets profiles built its way instead: a
*generation* is a set of profiles under their own key prefix, built by their own consumer
group with one model version's profile math, from the start of the events topic. While a
rebuild runs, the live generation keeps serving and updating; once the rebuild's group has
caught up (its lag under a threshold) it becomes the live one in one step, and the old
generation's profiles are given a short expiry.

The original generation has no record: profiles under ``ZMOT_REDIS_PREFIX``, the worker's
``ZMOT_CONSUMER_GROUP``, the math of whatever model the registry points at. Everything else in
Redis (feedback counters and their fences, privacy records, decisions, links) is shared by all
generations: it is not built with a model's math.

Pure data and rules here; the Redis record is :mod:`recommender.adapters.generation_store`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from recommender.core.errors import ConfigError


@dataclass(frozen=True)
class Generation:
    """One generation of profiles: whose math, which consumer group, which key prefix."""

    name: str
    """Unique per rebuild (``<version>.<start time>``); ``""`` for the original generation."""
    version: str | None
    """The model version whose profile math builds it (None: the registry's, original only)."""
    group: str
    """The Kafka consumer group (and faust app id) of the workers building it."""
    prefix: str
    """The prefix of its profile keys (``profile_key(prefix, user)``)."""
    started: float = 0.0
    switched: float | None = None
    """When it became the live generation (None while it is being rebuilt)."""

    @property
    def original(self) -> bool:
        return self.name == ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Generation:
        try:
            data = json.loads(text)
            return cls(
                name=str(data["name"]),
                version=None if data.get("version") is None else str(data["version"]),
                group=str(data["group"]),
                prefix=str(data["prefix"]),
                started=float(data.get("started", 0.0)),
                switched=None if data.get("switched") is None else float(data["switched"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"unreadable profile generation record {text!r}: {exc}") from exc

    def describe(self) -> str:
        if self.original:
            return f"original profiles (prefix {self.prefix!r}, group {self.group})"
        return (
            f"generation {self.name} of model {self.version} "
            f"(prefix {self.prefix!r}, group {self.group})"
        )


def original(prefix: str, group: str) -> Generation:
    """The generation of a stack that never rebuilt: the settings' prefix and group."""
    return Generation("", None, group, prefix)


def new_generation(
    version: str,
    *,
    base_prefix: str,
    base_group: str,
    now: float,
    prefix_of: Callable[[str, str], str],
) -> Generation:
    """A fresh generation for ``version``: a name no earlier rebuild used (the start time is in
    it), so its consumer group starts from the beginning of the topic and its key prefix is
    empty. ``prefix_of(base_prefix, name)`` builds the key prefix (the Redis adapter's)."""
    name = f"{version}.{int(now)}"
    return Generation(name, version, f"{base_group}.{name}", prefix_of(base_prefix, name), now)


@dataclass(frozen=True)
class Progress:
    """How far a rebuild got, as its workers last measured it."""

    lag: int
    """Messages of the events topic its consumer group has not committed yet."""
    end: int
    """Messages in the topic (sum of end offsets) when measured."""
    checked: float
    """When measured (epoch seconds)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Progress | None:
        try:
            data = json.loads(text)
            return cls(int(data["lag"]), int(data["end"]), float(data["checked"]))
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def done_share(self) -> float:
        """The share of the topic already applied (1.0 for an empty topic)."""
        return 1.0 if self.end <= 0 else max(0.0, 1.0 - self.lag / self.end)


@dataclass(frozen=True)
class Retired:
    """A generation switched away from: its profile keys expire at ``until``."""

    prefix: str
    until: float
    """Epoch seconds at which its profiles have expired."""
    switched: float
    """When it stopped being live (a second sweep follows, for late writes)."""
    sweeps: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Retired | None:
        try:
            data = json.loads(text)
            return cls(
                str(data["prefix"]),
                float(data["until"]),
                float(data["switched"]),
                int(data.get("sweeps", 0)),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def swept(self) -> Retired:
        return replace(self, sweeps=self.sweeps + 1)

    def sweep_due(self, now: float, resweep_after_s: float) -> bool:
        """The first sweep at once; the second once writers of the old generation have had
        ``resweep_after_s`` to notice the switch and stop (their writes renew the key TTL)."""
        if self.sweeps == 0:
            return True
        return self.sweeps == 1 and now >= self.switched + resweep_after_s


@dataclass(frozen=True)
class GenerationState:
    """The whole record: the live generation, the rebuild in progress, retired prefixes."""

    live: Generation
    rebuild: Generation | None = None
    progress: Progress | None = None
    retired: tuple[Retired, ...] = ()

    def summary(self, max_lag: int | None = None) -> dict[str, Any]:
        """A JSON-ready view for `zmot model show`, `/readyz` and the ops page."""
        out: dict[str, Any] = {"live": asdict(self.live), "rebuild": None}
        if self.rebuild is not None:
            progress = self.progress
            out["rebuild"] = {
                **asdict(self.rebuild),
                "lag": None if progress is None else progress.lag,
                "topic_messages": None if progress is None else progress.end,
                "done_share": None if progress is None else round(progress.done_share, 4),
                "checked": None if progress is None else progress.checked,
                "switch_at_lag": max_lag,
            }
        out["retired"] = [asdict(r) for r in self.retired]
        return out


def caught_up(lag: int, max_lag: int) -> bool:
    """Whether a rebuild may become live: its group is at most ``max_lag`` messages behind.

    Nothing is lost either way: after the switch the same group keeps applying what is left.
    The threshold only bounds how stale the newly served profiles are for a moment.
    """
    return lag <= max_lag
