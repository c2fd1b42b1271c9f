"""`zmot retrain`: train a candidate, gate it against the served model on a fresh time split,
register it, and activate it only if it is not worse (:mod:`recommender.offline.retrain`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.history import duration_s, read_history
from cli.model_cmd import registry_at
from cli.options import EventsFile, FromKafka, RegistryDir, Since
from recommender.core.errors import ZmotError
from recommender.core.settings import get_settings

EXIT_REFUSED = 3


class GateRefused(ZmotError):
    """The candidate was worse than the served model: registered, not activated."""


def retrain_once(
    catalog: Path,
    events: Path | None,
    from_kafka: bool,
    since: str | None,
    registry: Path | None,
    validation_share: float,
    max_drop: float,
    epochs: int | None,
    hybrid: bool,
) -> str:
    """One retraining; the new version (active), or :class:`GateRefused`."""
    from cli.configs import resolve_config
    from cli.model_cmd import quality_of
    from recommender.core.catalog import Catalog
    from recommender.core.model import Model
    from recommender.core.replay import Profiler
    from recommender.offline.evaluation import split_events
    from recommender.offline.hybrid import train_served
    from recommender.offline.retrain import quality_gate

    def log(line: str) -> None:
        typer.echo(line, err=True)

    reg = registry_at(registry)
    cat = Catalog.load(catalog)
    report, source = read_history(events, from_kafka, since, log)
    early, fresh = split_events(report.events, split_ratio=1.0 - validation_share)
    log(f"{len(early)} events to train on, {len(fresh)} newer ones to validate on")
    chosen = resolve_config(None, epochs=epochs)
    profiler = Profiler(cat, chosen.features, chosen.profile)
    candidate = train_served(early, cat, profiler, chosen.train, hybrid=hybrid, log=log)
    candidate.recent_boost = chosen.recent_boost
    current_version = reg.current()
    quality = quality_of(candidate)
    gate = None
    if current_version is not None:
        current = Model.load(reg.path_of(current_version))
        gate = quality_gate(candidate, current, cat, early, fresh, max_drop=max_drop)
        log(f"{gate.describe()} ({current_version})")
        quality["gate"] = {**gate.to_dict(), "against": current_version}
    times = [e.ts for e in early if e.ts is not None]
    reg.register(
        candidate,
        data_range=(min(times), max(times)) if times else None,
        quality=quality,
        source=f"retrain: {source}",
    )
    if gate is not None and not gate.passed:
        raise GateRefused(
            f"{candidate.version} registered but not activated: {gate.describe()}; "
            f"{current_version} keeps serving"
        )
    reg.activate(candidate.version)
    log(f"activated {candidate.version} (was {current_version or 'none'})")
    return candidate.version


def register(app: typer.Typer) -> None:
    @app.command()
    def retrain(
        catalog: Annotated[Path, typer.Option(help="catalog.jsonl")],
        events: EventsFile = None,
        from_kafka: FromKafka = False,
        since: Since = None,
        registry: RegistryDir = None,
        validation_share: Annotated[
            float,
            typer.Option(min=0.01, max=0.5, help="Newest share of the history to validate on."),
        ] = 0.1,
        max_drop: Annotated[
            Optional[float],  # noqa: UP045
            typer.Option(help="Allowed HR@10 drop (default ZMOT_RETRAIN_MAX_DROP)."),
        ] = None,
        epochs: Annotated[Optional[int], typer.Option(min=1)] = None,  # noqa: UP045
        hybrid: Annotated[bool, typer.Option("--hybrid/--no-hybrid")] = True,
        every: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option(
                help="Repeat every N d/h/m/s (e.g. 6h) until stopped; a refused or failed "
                "run waits for the next one."
            ),
        ] = None,
        runs: Annotated[
            Optional[int],  # noqa: UP045
            typer.Option(
                min=1,
                help="With --every: stop after this many runs (exit 3 if the last was "
                "refused, 1 if it failed). Default: until stopped.",
            ),
        ] = None,
    ) -> None:
        """Train on all but the newest events, gate against the served model on those, and
        activate only if not worse (exit 3 when refused). Prints the new version."""
        drop = get_settings().retrain_max_drop if max_drop is None else max_drop
        if runs is not None and every is None:
            raise ZmotError("--runs goes with --every")
        pause = None if every is None else duration_s(every, "--every")
        done = 0
        while True:
            done += 1
            outcome = 0
            try:
                version = retrain_once(
                    catalog, events, from_kafka, since, registry, validation_share, drop,
                    epochs, hybrid,
                )  # fmt: skip
                typer.echo(version)
            except GateRefused as exc:
                typer.secho(f"refused: {exc}", fg=typer.colors.RED, err=True)
                outcome = EXIT_REFUSED
            except ZmotError as exc:
                if pause is None:
                    raise
                # A scheduled loop outlives a broker or disk hiccup: the next run tries again.
                typer.secho(f"run {done} failed: {exc}", fg=typer.colors.RED, err=True)
                outcome = 1
            if pause is None or (runs is not None and done >= runs):
                if outcome:
                    raise typer.Exit(outcome)
                return
            typer.echo(f"next retraining in {every} (run {done + 1})", err=True)
            time.sleep(pause)
