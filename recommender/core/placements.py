"""Placements: where offers appear (a home page slot, a product page, an ad), each configured.

A YAML (or JSON) file maps placement names to their settings; every key is optional::

    placements:
      product_page:
        k: 2                     # offers when the request gives no k
        channels: [web, app]     # offers must allow one of these channels (empty: any)
        context_weights:         # offer group -> multiplier of the priority (default 1)
          support: 1.5
        exploration: {share: 0.1, method: epsilon}   # or softmax with temperature
      ad:
        k: 1
        channels: [ad]
        exploration: {share: 0}  # off
      new_for_you:
        exclude_seen: true       # never offer an item the shopper already touched
      home:
        max_seen: 2              # at most 2 of them (the first 2), the other slots new items

A request without a placement, or with one the file does not name, gets :data:`DEFAULT`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from recommender.core.errors import ConfigError
from recommender.core.exploration import ExplorationPolicy
from recommender.core.offers import CHANNELS


@dataclass(frozen=True)
class Placement:
    """One placement's configuration."""

    name: str = "default"
    k: int | None = None
    channels: frozenset[str] = frozenset()
    context_weights: Mapping[str, float] = field(default_factory=dict)
    exploration: ExplorationPolicy = field(default_factory=ExplorationPolicy)
    exclude_seen: bool = False
    """Leave out the items the profile holds the shopper on (item features, remembered
    touches, purchases): a "new for you" slot. ``zmot evaluate``'s ``discover`` slice scores
    such lists."""
    max_seen: int | None = None
    """Offer at most this many of those items (the first ones in the placement's order; the
    rest stay out), so the other slots go to items new to the shopper; None: no cap, 0: as
    ``exclude_seen``.
    ``benchmarks/new_frontier.py`` shows what each value costs and gains on evaluated data."""

    @property
    def seen_cap(self) -> int | None:
        """How many of the shopper's own items may be offered (None: any number)."""
        return 0 if self.exclude_seen else self.max_seen

    def context_weight(self, group: str) -> float:
        return float(self.context_weights.get(group, self.context_weights.get("*", 1.0)))


DEFAULT = Placement()


@dataclass(frozen=True)
class Placements:
    """All configured placements by name."""

    by_name: Mapping[str, Placement] = field(default_factory=dict)
    default: Placement = DEFAULT
    """What a request without a placement, or with one not named, gets."""

    def get(self, name: str | None) -> Placement:
        if name is None:
            return self.default
        return self.by_name.get(name, self.default)

    def with_exploration(self, policy: ExplorationPolicy) -> Placements:
        """The same placements, every one (and the default) exploring with ``policy``."""
        return Placements(
            {n: replace(p, exploration=policy) for n, p in self.by_name.items()},
            replace(self.default, exploration=policy),
        )


FIELDS = frozenset({"k", "channels", "context_weights", "exploration", "exclude_seen", "max_seen"})


def _placement(name: str, raw: Any, where: str) -> Placement:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: placement {name!r} must be a mapping")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise ConfigError(f"{where}: placement {name!r}: unknown field {unknown[0]!r}")
    k = raw.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConfigError(f"{where}: placement {name!r}: k must be a whole number >= 1")
    channels = raw.get("channels") or []
    if not isinstance(channels, list) or not set(channels) <= set(CHANNELS):
        raise ConfigError(f"{where}: placement {name!r}: channels must be some of {CHANNELS}")
    weights = raw.get("context_weights") or {}
    if not isinstance(weights, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in weights.values()
    ):
        raise ConfigError(f"{where}: placement {name!r}: context_weights must map to numbers >= 0")
    explore = raw.get("exploration") or {}
    if not isinstance(explore, dict):
        raise ConfigError(f"{where}: placement {name!r}: exploration must be a mapping")
    share = explore.get("share", 0.0)
    method = explore.get("method", "epsilon")
    temperature = explore.get("temperature", 0.5)
    if not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        raise ConfigError(f"{where}: placement {name!r}: exploration.share must be in [0, 1]")
    if method not in ("epsilon", "softmax"):
        raise ConfigError(f"{where}: placement {name!r}: exploration.method: epsilon or softmax")
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ConfigError(f"{where}: placement {name!r}: exploration.temperature must be > 0")
    exclude_seen = raw.get("exclude_seen", False)
    if not isinstance(exclude_seen, bool):
        raise ConfigError(f"{where}: placement {name!r}: exclude_seen must be true or false")
    max_seen = raw.get("max_seen")
    if max_seen is not None and (
        isinstance(max_seen, bool) or not isinstance(max_seen, int) or max_seen < 0
    ):
        raise ConfigError(f"{where}: placement {name!r}: max_seen must be a whole number >= 0")
    if exclude_seen and max_seen:
        raise ConfigError(
            f"{where}: placement {name!r}: exclude_seen: true allows no seen item, "
            f"max_seen: {max_seen} allows some: give one of them"
        )
    return Placement(
        name=name,
        k=k,
        channels=frozenset(channels),
        context_weights={str(g): float(v) for g, v in weights.items()},
        exploration=ExplorationPolicy(float(share), method, float(temperature)),
        exclude_seen=exclude_seen,
        max_seen=max_seen,
    )


def parse_placements(data: Any, where: str = "placements") -> Placements:
    """Placements from decoded YAML/JSON (``{placements: {name: {...}}}`` or the inner map)."""
    if data is None:
        return Placements()
    if isinstance(data, dict) and "placements" in data:
        data = data["placements"]
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of placement names")
    return Placements({str(n): _placement(str(n), raw, where) for n, raw in data.items()})


def load_placements(path: Path | None) -> Placements:
    """Placements from a file (None: none configured, every request gets the default)."""
    if path is None:
        return Placements()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read placements {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {exc}") from None
    return parse_placements(data, str(path))
