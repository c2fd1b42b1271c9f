"""`zmot keys create|list|revoke`: the API keys file (only SHA-256 hashes of keys are stored)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recommender.core.access import SCOPES, add_key, load_keys, revoke_key
from recommender.core.errors import ConfigError
from recommender.core.settings import get_settings

keys_app = typer.Typer(
    help="API keys: create (the key is printed once), list, revoke.", no_args_is_help=True
)

FileOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--file", help="Keys file (default: ZMOT_API_KEYS_FILE)."),
]


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _path(file: Path | None) -> Path:
    path = file or get_settings().api_keys_file
    if path is None:
        raise ConfigError("no keys file: pass --file or set ZMOT_API_KEYS_FILE")
    return path


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who holds the key, e.g. shop-browser.")],
    scopes: Annotated[str, typer.Option(help=f"Comma-separated, of: {', '.join(SCOPES)}.")],
    origins: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Comma-separated origins (https://shop.example) a browser may use."),
    ] = None,
    event_types: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Comma-separated event types the key may send (default: all)."),
    ] = None,
    generic_reasons: Annotated[
        bool, typer.Option("--generic-reasons", help="Answers never quote personal facts.")
    ] = False,
    per_second: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(min=0.001, help="Rate limit: requests per second (with --burst)."),
    ] = None,
    burst: Annotated[Optional[int], typer.Option(min=1, help="Rate limit: burst.")] = None,  # noqa: UP045
    file: FileOption = None,
) -> None:
    """Create a key, add its hash to the file and print the key (shown only this once)."""
    path = _path(file)
    if (per_second is None) != (burst is None):
        raise ConfigError("--per-second and --burst go together")
    rate = (per_second, burst) if per_second is not None and burst is not None else None
    key = add_key(
        path,
        name,
        _split(scopes),
        origins=_split(origins),
        event_types=_split(event_types) if event_types else None,
        reasons="generic" if generic_reasons else "full",
        rate=rate,
    )
    typer.echo(key)
    typer.echo(
        f"key {name!r} added to {path}; it is shown only now (the file keeps its SHA-256)",
        err=True,
    )


@keys_app.command("list")
def list_keys(file: FileOption = None) -> None:
    """The keys of the file: name, scopes, origins, event types, reasons, rate (no secrets)."""
    path = _path(file)
    for entry in load_keys(path).keys:
        parts = [f"{entry.name}", f"scopes={','.join(entry.scopes)}"]
        if entry.origins:
            parts.append(f"origins={','.join(entry.origins)}")
        if entry.event_types is not None:
            parts.append(f"event_types={','.join(entry.event_types)}")
        if entry.generic_reasons:
            parts.append("reasons=generic")
        if entry.rate is not None:
            parts.append(f"rate={entry.rate.per_second:g}/s burst {entry.rate.burst}")
        parts.append(f"sha256={entry.sha256[:12]}...")
        typer.echo("  ".join(parts))


@keys_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="Name of the key to remove.")],
    file: FileOption = None,
) -> None:
    """Remove a key; running APIs stop accepting it within seconds."""
    path = _path(file)
    revoke_key(path, name)
    typer.echo(f"key {name!r} revoked in {path}")


def register(app: typer.Typer) -> None:
    """Add the keys commands to the zmot CLI."""
    app.add_typer(keys_app, name="keys")
