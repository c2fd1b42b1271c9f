"""`zmot model list|show|activate|rollback`: the model registry under ZMOT_MODEL_DIR.

`zmot train` (without `--out`) registers its model here too: :func:`register_trained`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.options import RegistryDir
from recommender.core.errors import ConfigError, ModelError
from recommender.core.events import Event
from recommender.core.model import Model
from recommender.core.registry import Registry, compatibility
from recommender.core.settings import get_settings

model_app = typer.Typer(
    help="The model registry (ZMOT_MODEL_DIR): list, show, activate, rollback.",
    no_args_is_help=True,
)

RegistryOption = RegistryDir


def registry_at(path: Path | None) -> Registry:
    root = path or get_settings().model_dir
    if root is None:
        raise ConfigError("no registry: pass --registry or set ZMOT_MODEL_DIR")
    return Registry(root)


def quality_of(model: Model) -> dict[str, Any]:
    """The figures training measured on data it held out of each fit: the hybrid ranker's
    validation moments (the last 20% of the history, ranked by tables of the first 80%) and
    the calibration's held-out contexts."""
    quality: dict[str, Any] = {
        "calibration_contexts": model.info.get("n_calibration_contexts"),
    }
    if model.hybrid is not None:
        info = model.hybrid.info
        quality["hybrid_validation_moments"] = info.get("moments")
        quality["hybrid_candidate_recall"] = info.get("candidate_recall")
        quality["hybrid_calibration"] = info.get("calibration")
    return quality


def register_trained(
    root: Path,
    model: Model,
    events: Sequence[Event],
    *,
    activate: bool,
    source: str,
    show: Callable[[str], None],
    summary: Callable[[Path], str],
) -> None:
    """Register a freshly trained model; activate it when asked or when it is the first."""
    registry = Registry(root)
    times = [e.ts for e in events if e.ts is not None]
    data_range = (min(times), max(times)) if times else None
    first = registry.current() is None
    path = registry.register(model, data_range=data_range, quality=quality_of(model), source=source)
    show(f"registered model {model.version} -> {path} ({summary(path)})")
    if activate or first:
        registry.activate(model.version)
        why = "the registry had none active" if first and not activate else "--activate"
        show(f"activated {model.version} ({why})")
    else:
        show(f"not activated: `zmot model activate {model.version}` serves it")
    typer.echo(model.version)


@model_app.command("list")
def list_models(
    registry: RegistryOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Registered versions, oldest first; `*` marks the active one."""
    reg = registry_at(registry)
    current = reg.current()
    rows = [{**reg.manifest(v), "version": v, "active": v == current} for v in reg.versions()]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        typer.echo(f"no model registered in {reg.root}")
    for row in rows:
        mark = "*" if row["active"] else " "
        size = row.get("artifact_bytes")
        size_text = f"{size / 1e6:.2f} MB" if isinstance(size, int) else "? MB"
        typer.echo(f"{mark} {row['version']}  created {row.get('created', '?')}  {size_text}")


@model_app.command("show")
def show(
    version: Annotated[str, typer.Argument(help="A registered version.")],
    registry: RegistryOption = None,
) -> None:
    """The manifest of one version (created, data range, quality, size) as JSON."""
    reg = registry_at(registry)
    manifest = reg.manifest(version)
    meta = reg.meta(version)
    out = {
        **manifest,
        "version": version,
        "active": reg.current() == version,
        "feature_config": meta.get("feature_config"),
        "profile_params": meta.get("profile_params"),
    }
    typer.echo(json.dumps(out, indent=1))


@model_app.command("activate")
def activate(
    version: Annotated[str, typer.Argument(help="A registered version.")],
    registry: RegistryOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Activate an incompatible version anyway: running API processes keep the "
            "old one; restart them after rebuilding profiles (README, Model registry).",
        ),
    ] = False,
) -> None:
    """Point `current` at VERSION; says whether it swaps in hot or needs profiles rebuilt."""
    reg = registry_at(registry)
    candidate = reg.meta(version)
    current = reg.current()
    if current is not None and current != version:
        verdict = compatibility(reg.meta(current), candidate)
        typer.echo(f"{current} -> {version}: {verdict.describe()}")
        if not verdict.compatible and not force:
            raise ModelError(
                f"not activated: {version} builds profiles differently from {current}. "
                "A hot swap would read live profiles with the wrong features; rebuild "
                "profiles with its configs (README, Model registry), then activate with --force"
            )
    reg.activate(version)
    typer.echo(f"active: {version} (was {current or 'none'})")


@model_app.command("rollback")
def rollback(registry: RegistryOption = None) -> None:
    """Activate the version that was active before the current one."""
    reg = registry_at(registry)
    previous = reg.previous()
    current = reg.current()
    if current is not None and previous is not None:
        verdict = compatibility(reg.meta(current), reg.meta(previous))
        if not verdict.compatible:
            typer.echo(f"warning: {verdict.describe()}; the API keeps {current} until restarted")
    old, new = reg.rollback()
    typer.echo(f"rolled back: {old} -> {new}")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
