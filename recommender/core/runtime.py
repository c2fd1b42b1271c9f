"""The runtime configuration: the settings, with the model's own profile math on top.

A model is trained on profiles built with one feature config, one half-life and one top-N; a
worker that decays with another half-life, or an API that computes the journey stage with
another, serves features the model never saw. So every process resolves its configuration
here, from the same two inputs (the settings and the model's ``meta.json``), and never maps
settings to configs itself:

- feature config, half-life, top-N and purchase memory: the model's when it names them, else
  the settings' (and :class:`~recommender.core.features.FeatureConfig`'s defaults);
- exposure windows and every arbitration knob: always the settings' (serving policy, not model
  input);
- the recency blend: ``ZMOT_RECENT_ITEM_BOOST`` when set, else the model's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recommender.core.arbitration import ArbitrationConfig
from recommender.core.arbitration.types import DEFAULT_PURCHASE_EXCLUSION_DAYS
from recommender.core.errors import ModelError
from recommender.core.features import FeatureConfig
from recommender.core.profile import ProfileParams
from recommender.core.registry import CURRENT, locate, read_json_object
from recommender.core.settings import Settings

log = logging.getLogger(__name__)

MODEL_META = "meta.json"
"""The file of a model directory that names its configs (written by ``Model.save``)."""

DAY_S = 86400.0
HOUR_S = 3600.0


@dataclass(frozen=True)
class Runtime:
    """What the worker, the API, training and evaluation run with."""

    features: FeatureConfig
    profile: ProfileParams
    arbitration: ArbitrationConfig

    @property
    def half_life_s(self) -> float:
        """The one half-life of this runtime: profiles, journey stage and profile route."""
        return self.profile.half_life_s


def profile_params(settings: Settings) -> ProfileParams:
    """The profile math the settings ask for (a model, when there is one, overrides the first
    four fields; see :func:`resolve`)."""
    return ProfileParams(
        half_life_s=settings.half_life_s,
        top_n=settings.profile_top_n,
        purchase_memory=settings.purchase_memory,
        touch_memory=settings.touch_memory,
        exposure_keep_s=max(settings.cap_window_hours, settings.dismiss_window_hours) * HOUR_S,
        exposure_memory=settings.exposure_memory,
        dedupe_window_s=settings.dedupe_window_hours * HOUR_S,
        dedupe_memory=settings.dedupe_memory,
    )


def read_model_meta(model_dir: Path | None) -> dict[str, Any]:
    """The model's ``meta.json`` as a dict, or {} when there is no model (or no meta) to follow.

    A meta file that exists but cannot be read raises :class:`ModelError`.
    """
    if model_dir is None:
        return {}
    path = Path(model_dir) / MODEL_META
    if not path.exists():
        log.info("no %s in %s: profile settings come from ZMOT_*", MODEL_META, model_dir)
        return {}
    return read_json_object(path)


def resolve(
    settings: Settings, meta: Mapping[str, Any] | None = None, *, where: str = "the model"
) -> Runtime:
    """The runtime of ``settings`` under a model whose meta is ``meta`` (None or {}: no model).

    ``where`` names the meta in errors and logs. A meta whose configs cannot be read raises
    :class:`ModelError`.
    """
    meta = meta or {}
    features = FeatureConfig()
    params = profile_params(settings)
    boost = 0.0
    try:
        if "feature_config" in meta:
            features = FeatureConfig.from_dict(meta["feature_config"])
        if "profile_params" in meta:
            raw = meta["profile_params"]
            model_params = replace(
                params,
                half_life_s=float(raw["half_life_s"]),
                top_n=int(raw["top_n"]),
                purchase_memory=int(raw["purchase_memory"]),
                touch_memory=int(raw.get("touch_memory", params.touch_memory)),
            )
            if model_params != params:
                log.warning(
                    "profile params of %s override the settings: %s (settings: %s)",
                    where,
                    model_params,
                    params,
                )
            params = model_params
        boost = float(meta.get("recent_boost", 0.0))
    except (TypeError, KeyError, ValueError) as exc:
        raise ModelError(f"{where}: bad feature_config or profile_params ({exc!r})") from exc
    if settings.recent_item_boost is not None:
        boost = settings.recent_item_boost
    exclusion_days = settings.purchase_exclusion_days
    if exclusion_days is None:
        exclusion_days = purchase_exclusion_days(meta, hybrid=settings.hybrid != "off")
    config = arbitration_config(settings, params.half_life_s, boost, exclusion_days)
    return Runtime(features, params, config)


def purchase_exclusion_days(meta: Mapping[str, Any], *, hybrid: bool) -> float:
    """``ZMOT_PURCHASE_EXCLUSION_DAYS`` when unset: 30 days, or 0 when the model's hybrid
    ranker (served: ``hybrid``, tables with an offset) recorded that excluding bought items
    cost hits on its end-of-training moments (``purchase_rule`` false in its meta entry: see
    :func:`recommender.offline.hybrid.purchase_rule_test`)."""
    entry = meta.get("hybrid")
    if hybrid and isinstance(entry, Mapping) and entry.get("offset") is not None:
        if entry.get("purchase_rule", True) is False:
            return 0.0
    return DEFAULT_PURCHASE_EXCLUSION_DAYS


def serving_model_dir(model_dir: Path | None) -> Path | None:
    """The artifact folder served for ``ZMOT_MODEL_DIR``: itself when it is an artifact (or
    names nothing usable: :func:`read_model_meta` then says so), else the registry's current
    version (:func:`recommender.core.registry.locate`)."""
    if model_dir is None or (Path(model_dir) / MODEL_META).exists():
        return model_dir
    if not (Path(model_dir) / CURRENT).exists():
        return model_dir
    return locate(Path(model_dir)).path


def resolve_runtime(settings: Settings) -> Runtime:
    """The runtime of ``settings`` with the model at ``ZMOT_MODEL_DIR`` (if any; the current
    version of a registry)."""
    model_dir = serving_model_dir(settings.model_dir)
    where = f"{model_dir}/{MODEL_META}"
    return resolve(settings, read_model_meta(model_dir), where=where)


def arbitration_config(
    settings: Settings, half_life_s: float, recent_boost: float, purchase_exclusion_days: float
) -> ArbitrationConfig:
    """The arbitration knobs of the settings, with the runtime's half-life, blend and
    purchase exclusion."""
    return ArbitrationConfig(
        purchase_exclusion_s=purchase_exclusion_days * DAY_S,
        substitute_window_s=settings.substitute_exclusion_days * DAY_S,
        smot_window_s=settings.smot_window_days * DAY_S,
        half_life_s=half_life_s,
        relevance_floor=settings.relevance_floor,
        floor_fallback=settings.floor_fallback,
        cap_window_s=settings.cap_window_hours * HOUR_S,
        dismiss_window_s=settings.dismiss_window_hours * HOUR_S,
        dismiss_limit=settings.dismiss_limit,
        complement_boost=settings.complement_boost,
        stage_boost=settings.stage_boost,
        recent_boost=recent_boost,
        default_k=settings.default_k,
        hybrid=settings.hybrid != "off",
    )
