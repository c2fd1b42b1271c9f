"""The training config a command runs with: a `zmot tune` file or the defaults, plus options."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from recommender.core.runtime import profile_params
from recommender.core.settings import get_settings
from recommender.offline.tuning import Config


def resolve_config(
    path: Path | None,
    *,
    epochs: int | None = None,
    components: int | None = None,
    loss: str | None = None,
    target: str | None = None,
    seed: int | None = None,
) -> Config:
    """The config file (or the defaults, with decay and top-N from the settings) with the
    command-line options on top."""
    if path is not None:
        base = Config.load(path)
    else:
        base = Config(profile=profile_params(get_settings()))
    if loss is not None and loss not in ("warp", "bpr", "warp-kos", "logistic"):
        raise typer.BadParameter("--loss must be warp, bpr, warp-kos or logistic")
    if target is not None and target not in ("any", "conversion"):
        raise typer.BadParameter("--target must be 'any' or 'conversion'")
    overrides: dict[str, Any] = {
        "epochs": epochs,
        "no_components": components,
        "loss": loss,
        "target": target,
        "seed": seed,
    }
    train_config = replace(base.train, **{k: v for k, v in overrides.items() if v is not None})
    return replace(base, train=train_config)
