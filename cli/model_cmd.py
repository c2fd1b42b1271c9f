"""`zmot model list|show|activate|rollback`: the model registry under ZMOT_MODEL_DIR.

`zmot train` (without `--out`) registers its model here too: :func:`register_trained`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.options import RegistryDir
from recommender.core.errors import ConfigError, ModelError, ZmotError
from recommender.core.events import Event
from recommender.core.generations import Generation
from recommender.core.model import Model
from recommender.core.registry import Registry, compatibility
from recommender.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from recommender.adapters.generation_store import GenerationStore

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
        "profiles": _profiles_of(version),
    }
    typer.echo(json.dumps(out, indent=1))


def _profiles_of(version: str) -> dict[str, Any] | str | None:
    """Where the version's profiles stand: its live generation or its rebuild in progress
    (None: neither; a note when Redis cannot be read)."""
    settings = get_settings()

    async def read() -> dict[str, Any]:
        async with generation_store(settings) as store:
            return (await store.state()).summary(settings.rebuild_max_lag)

    try:
        summary = asyncio.run(read())
    except ZmotError as exc:
        return f"unknown: {exc}"
    for role in ("live", "rebuild"):
        generation = summary[role]
        if generation is not None and generation["version"] == version:
            return {"role": role, **generation}
    return None


@model_app.command("activate")
def activate(
    version: Annotated[str, typer.Argument(help="A registered version.")],
    registry: RegistryOption = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="For a version that builds profiles differently: start a rebuild of profiles "
            "its way (a new consumer group from the start of the topic, a new key prefix); "
            "run `zmot worker --rebuild` for it. The API and the workers switch to the version "
            "once the rebuild has caught up (README, Blue/green profiles).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Move the pointer to an incompatible version anyway: running API processes "
            "refuse it and keep the old one (README, Model registry).",
        ),
    ] = False,
) -> None:
    """Point `current` at VERSION when it reads the live profiles (hot swap); for one that
    builds profiles differently, say so and, with --rebuild, start rebuilding them its way."""
    reg = registry_at(registry)
    candidate = reg.meta(version)
    current = reg.current()
    if current is not None and current != version:
        verdict = compatibility(reg.meta(current), candidate)
        typer.echo(f"{current} -> {version}: {verdict.describe()}")
        if not verdict.compatible and rebuild:
            start_rebuild(version)
            return
        if not verdict.compatible and not force:
            raise ModelError(
                f"not activated: {version} builds profiles differently from {current}. "
                "A hot swap would read live profiles with the wrong features: "
                f"`zmot model activate {version} --rebuild` rebuilds profiles its way and "
                "switches once they have caught up (README, Blue/green profiles)"
            )
    if rebuild:
        typer.echo(f"{version}: reads the live profiles as they are, nothing to rebuild")
    reg.activate(version)
    typer.echo(f"active: {version} (was {current or 'none'})")


def start_rebuild(version: str) -> None:
    """Record the rebuild of profiles for ``version`` in Redis and say what happens next."""
    settings = get_settings()

    async def start() -> Generation:
        async with generation_store(settings) as store:
            return await store.start_rebuild(version)

    generation = asyncio.run(start())
    typer.echo(
        f"rebuild started: {generation.describe()}.\n"
        "Run `zmot worker --rebuild` (as many processes as for live work) to build them from "
        "the start of the events topic; live profiles keep serving meanwhile. When the "
        f"rebuild is at most {settings.rebuild_max_lag} messages behind (ZMOT_REBUILD_MAX_LAG) "
        f"it becomes live: the registry points at {version}, the API and the workers switch, "
        "the old profiles expire. Progress: `zmot model rebuild`."
    )


@asynccontextmanager
async def generation_store(settings: Settings) -> AsyncIterator[GenerationStore]:
    """The stack's generations record, on a client closed afterwards."""
    from recommender.adapters.generation_store import GenerationStore
    from recommender.adapters.redis_client import check, client_for, close

    client = client_for(settings)
    try:
        await check(client, settings)
        yield GenerationStore(client, settings.redis_prefix, settings.consumer_group)
    finally:
        await close(client)


def rebuild_lines(summary: dict[str, Any]) -> list[str]:
    """`zmot model rebuild`'s text: live generation, rebuild progress, retired prefixes."""
    live = summary["live"]
    lines = [
        "live profiles: "
        + (
            f"original (prefix {live['prefix']!r}, group {live['group']})"
            if not live["name"]
            else f"{live['name']} of model {live['version']} (prefix {live['prefix']!r})"
        )
    ]
    running = summary["rebuild"]
    if running is None:
        lines.append("rebuild: none running")
    else:
        lag = running["lag"]
        progress = (
            "not measured yet (is a `zmot worker --rebuild` running?)"
            if lag is None
            else f"lag {lag} of {running['topic_messages']} messages "
            f"({running['done_share']:.1%} done), switches at lag <= {running['switch_at_lag']}"
        )
        lines.append(f"rebuild: {running['name']} of model {running['version']}: {progress}")
    for retired in summary["retired"]:
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(retired["until"]))
        lines.append(f"retired: prefix {retired['prefix']!r}, expires by {until}")
    return lines


@model_app.command("rebuild")
def rebuild_status(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    cancel: Annotated[
        bool,
        typer.Option("--cancel", help="Stop the rebuild in progress; its profiles expire."),
    ] = False,
) -> None:
    """Blue/green profiles: the live generation and the progress of a rebuild in progress."""
    settings = get_settings()

    async def read() -> tuple[dict[str, Any], Generation | None]:
        async with generation_store(settings) as store:
            cancelled = (
                await store.cancel_rebuild(settings.retired_profiles_ttl_s) if cancel else None
            )
            return (await store.state()).summary(settings.rebuild_max_lag), cancelled

    summary, cancelled = asyncio.run(read())
    if cancel:
        typer.echo(
            f"cancelled: {cancelled.describe()}" if cancelled else "no rebuild was running",
            err=as_json,
        )
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
        return
    for line in rebuild_lines(summary):
        typer.echo(line)


@model_app.command("rollback")
def rollback(registry: RegistryOption = None) -> None:
    """Activate the version that was active before the current one."""
    reg = registry_at(registry)
    previous = reg.previous()
    current = reg.current()
    if current is not None and previous is not None:
        verdict = compatibility(reg.meta(current), reg.meta(previous))
        if not verdict.compatible:
            typer.echo(
                f"warning: {verdict.describe()}; API and workers keep serving {current}: "
                f"`zmot model activate {previous} --rebuild` rebuilds profiles for it"
            )
    old, new = reg.rollback()
    typer.echo(f"rolled back: {old} -> {new}")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
