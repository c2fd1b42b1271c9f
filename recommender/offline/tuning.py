"""Hyper-parameter search on a validation split (never on the test split).

The training part of a split is cut again by time: the earlier share fits, the later share
validates, and each trial is scored with the same replay evaluation as `zmot evaluate`. The
blend weight of the user's own items is searched for free on every trained model (it needs
no retraining). A trial budget in seconds bounds the search; trials are drawn at random from
the grid (the first one is the defaults, so the search never does worse than them on
validation).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from recommender.core.arbitration.types import DAY, DEFAULT_PURCHASE_EXCLUSION_DAYS
from recommender.core.catalog import Catalog
from recommender.core.errors import ConfigError
from recommender.core.events import Event
from recommender.core.features import DEFAULT_KIND_WEIGHTS, FeatureConfig
from recommender.core.profile import ProfileParams
from recommender.core.replay import Profiler
from recommender.offline.evaluation import evaluate, split_events
from recommender.offline.training import Target, TrainConfig, train

GRID: dict[str, Sequence[Any]] = {
    "no_components": (16, 32, 48, 64),
    "loss": ("warp", "bpr"),
    "epochs": (10, 20, 30, 50),
    "learning_rate": (0.02, 0.05, 0.1),
    "horizon": (1, 3, 5),
    "half_life_hours": (1.0, 4.0, 24.0, 72.0, 168.0),
    "top_n": (32, 64, 128),
    "conversion_weight": (1.0, 2.0, 4.0),
}
BOOSTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 100.0)


@dataclass(frozen=True)
class Config:
    """Everything a trained, served model depends on; what `zmot tune` writes."""

    train: TrainConfig = field(default_factory=TrainConfig)
    profile: ProfileParams = field(default_factory=ProfileParams)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    recent_boost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": asdict(self.train),
            "profile": asdict(self.profile),
            "features": self.features.to_dict(),
            "recent_boost": self.recent_boost,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        try:
            return cls(
                train=TrainConfig(**data.get("train", {})),
                profile=ProfileParams(**data.get("profile", {})),
                features=FeatureConfig.from_dict(data.get("features", {})),
                recent_boost=float(data.get("recent_boost", 0.0)),
            )
        except TypeError as exc:
            raise ConfigError(f"bad config: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> Config:
        """A config file, or the document `zmot tune` writes (its ``config`` member)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(data.get("config", data))


def _candidate(point: dict[str, Any], base: Config, target: Target) -> Config:
    kinds = dict(DEFAULT_KIND_WEIGHTS)
    for kind in ("add_to_cart", "purchase"):
        kinds[kind] = DEFAULT_KIND_WEIGHTS[kind] * point["conversion_weight"] / 2.0
    return Config(
        train=replace(
            base.train,
            no_components=point["no_components"],
            loss=point["loss"],
            epochs=point["epochs"],
            learning_rate=point["learning_rate"],
            horizon=point["horizon"],
            target=target,
        ),
        profile=replace(
            base.profile, half_life_s=point["half_life_hours"] * 3600.0, top_n=point["top_n"]
        ),
        features=replace(base.features, kind_weights=kinds),
    )


@dataclass
class Trial:
    config: Config
    score: float
    metrics: dict[str, float]
    seconds: float


def tune(
    events: Sequence[Event],
    catalog: Catalog,
    *,
    budget_s: float = 1500.0,
    max_trials: int = 200,
    validation_ratio: float = 0.8,
    k: int = 10,
    metric: str = "hr",
    target: Target = "any",
    purchase_exclusion_s: float = DEFAULT_PURCHASE_EXCLUSION_DAYS * DAY,
    seed: int = 0,
    log: Callable[[str], None] = lambda _: None,
) -> list[Trial]:
    """Random search over :data:`GRID` (and :data:`BOOSTS`); trials sorted best first.

    ``events`` must be training data only: they are split again by time into fit and
    validation parts.
    """
    fit_events, valid_events = split_events(events, split_ratio=validation_ratio)
    if not fit_events or not valid_events:
        raise ConfigError("too few events to hold out a validation part")
    rng = random.Random(seed)
    defaults = Config()
    default_point = {
        "no_components": defaults.train.no_components,
        "loss": defaults.train.loss,
        "epochs": defaults.train.epochs,
        "learning_rate": defaults.train.learning_rate,
        "horizon": defaults.train.horizon,
        "half_life_hours": defaults.profile.half_life_s / 3600.0,
        "top_n": defaults.profile.top_n,
        "conversion_weight": 2.0,
    }
    name = f"{metric}@{k}"
    trials: list[Trial] = []
    seen: set[str] = set()
    started = time.monotonic()
    point = default_point
    while True:
        key = json.dumps(point, sort_keys=True)
        if key not in seen:
            seen.add(key)
            t0 = time.monotonic()
            config = _candidate(point, defaults, target)
            profiler = Profiler(catalog, config.features, config.profile)
            try:
                model = train(fit_events, catalog, profiler, config.train)
            except ConfigError as exc:  # e.g. no training rows with these settings
                log(f"trial {len(seen)}: skipped ({exc})")
                model = None
            for boost in BOOSTS if model is not None else ():
                assert model is not None
                result = evaluate(
                    model,
                    catalog,
                    profiler,
                    fit_events,
                    valid_events,
                    ks=[k],
                    target=target,
                    recent_boost=boost,
                    purchase_exclusion_s=purchase_exclusion_s,
                    depth=k,
                )
                metrics = result.method_metrics("live")
                trials.append(
                    Trial(
                        replace(config, recent_boost=boost),
                        metrics[name],
                        metrics,
                        time.monotonic() - t0,
                    )
                )
            if model is not None:
                best = max(trials, key=lambda t: t.score)
                latest = max(t.score for t in trials[-len(BOOSTS) :])
                log(
                    f"trial {len(seen)}: {name}={latest:.4f} ({time.monotonic() - t0:.1f} s);"
                    f" best so far {best.score:.4f}"
                )
        elapsed = time.monotonic() - started
        per_trial = elapsed / max(1, len(seen))
        if elapsed + per_trial > budget_s or len(seen) >= max_trials:
            break
        point = {key_: rng.choice(values) for key_, values in GRID.items()}
    return sorted(trials, key=lambda t: -t.score)
