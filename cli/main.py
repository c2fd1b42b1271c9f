"""The ``zmot`` command: wires the packages together; nothing imports it.

Every command reads :class:`recommender.core.settings.Settings` from ``ZMOT_*`` environment
variables; options given here override them for that run.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cli.options import EventsFile, FromKafka, RegistryDir, RespectPrivacy, Since
from recommender.core.errors import ZmotError
from recommender.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from recommender.core.model import Model

app = typer.Typer(
    help="zmot: real-time next-best-offer engine (Kafka -> live profiles in Redis -> LightFM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
infra_app = typer.Typer(help="Local Kafka (KRaft) and Redis on 127.0.0.1.", no_args_is_help=True)
app.add_typer(infra_app, name="infra")


def _err(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)


def _settings(**overrides: object) -> Settings:
    base = get_settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=clean) if clean else base


def _log(message: str) -> None:
    typer.echo(message, err=True)


# --- infra --------------------------------------------------------------------------------
@infra_app.command("up")
def infra_up(
    redis_cluster: Annotated[
        int,
        typer.Option(
            min=0,
            help="Start a Redis Cluster of this many masters (on ZMOT_REDIS_URL's port and "
            "the ones after it) instead of one Redis; then set ZMOT_REDIS_CLUSTER=true.",
        ),
    ] = 0,
) -> None:
    """Start Kafka and Redis (idempotent), create the topics, wait until healthy."""
    from recommender.adapters import localstack

    localstack.up(get_settings(), log=_log, redis_cluster=redis_cluster)


@infra_app.command("down")
def infra_down() -> None:
    """Stop Kafka and Redis started by `zmot infra up` (data is kept)."""
    from recommender.adapters import localstack

    localstack.down(get_settings(), log=_log)


@infra_app.command("status")
def infra_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show whether Kafka and Redis are running and healthy."""
    from recommender.adapters import localstack

    status = localstack.status(get_settings())
    if as_json:
        typer.echo(json.dumps(status, indent=2, default=str))
        return
    for name, info in status.items():
        ok = "healthy" if info.get("healthy") else ("running" if info.get("running") else "down")
        typer.echo(f"{name:6} {ok:8} {info.get('address', '')} pid={info.get('pid')}")
        for port, node in info.get("nodes", {}).items():
            typer.echo(f"  node {port} pid={node['pid']} cluster_state={node['cluster_state']}")


# --- processes ----------------------------------------------------------------------------
@app.command()
def worker(
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Build the profiles of the rebuild in progress (`zmot model activate V "
            "--rebuild`) instead of the live ones; once caught up they become live and this "
            "worker goes on as a live one. Without a rebuild running: a live worker.",
        ),
    ] = False,
) -> None:
    """Run the stream worker: zmot.events -> profiles in Redis (Ctrl-C stops it)."""
    from stream.worker import run_worker

    run_worker(get_settings(), rebuild=rebuild)


@app.command()
def api(
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="uvicorn worker processes on the one port (each loads the model: README, "
            "Scaling out); at most the cores Kafka, Redis and the stream worker leave.",
        ),
    ] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs CPU).")] = False,
) -> None:
    """Serve the HTTP API (next best offer, events, profiles) on ZMOT_API_HOST:ZMOT_API_PORT."""
    from api.server import run_api

    run_api(get_settings(), workers=workers, access_log=access_log)


# --- data and model -----------------------------------------------------------------------
@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option(help="Folder for catalog, offers, events, intents.")],
    users: Annotated[int, typer.Option(min=1, help="Number of shoppers.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files).")] = 7,
) -> None:
    """Generate a synthetic shop: catalog.jsonl, offers.jsonl, events.jsonl, intents.jsonl."""
    from recommender.offline.synthetic import generate

    counts = generate(out, users=users, seed=seed, progress=True)
    for name, n in counts.items():
        typer.echo(f"{out / name}: {n} lines")


@app.command()
def train(
    catalog: Annotated[Path, typer.Option(help="catalog.jsonl")],
    events: EventsFile = None,
    from_kafka: FromKafka = False,
    since: Since = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Write one artifact to this folder (no registry). Default: register the "
            "model in ZMOT_MODEL_DIR (or --registry) as a new version."
        ),
    ] = None,
    registry: RegistryDir = None,
    activate: Annotated[
        bool,
        typer.Option(
            "--activate",
            help="Make the new version the served one (the first version always is).",
        ),
    ] = False,
    config: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Config from `zmot tune` (model, decay, weights, blend)."),
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1)] = None,  # noqa: UP045
    components: Annotated[Optional[int], typer.Option(min=2, help="Embedding size.")] = None,  # noqa: UP045
    loss: Annotated[Optional[str], typer.Option(help="warp, bpr, warp-kos or logistic.")] = None,  # noqa: UP045
    target: Annotated[
        Optional[str], typer.Option(help="any (every item event) or conversion.")
    ] = None,  # noqa: UP045
    seed: Annotated[Optional[int], typer.Option()] = None,  # noqa: UP045
    hybrid: Annotated[
        bool,
        typer.Option(
            "--hybrid/--no-hybrid",
            help="Fit the hybrid ranker's tables into the artifact (a second LightFM fit on "
            "the first 80% of the history; served by the API when present). --no-hybrid: the "
            "LightFM model and its calibration only, in about half the time.",
        ),
    ] = True,
    respect_privacy: RespectPrivacy = False,
) -> None:
    """Train LightFM on profiles replayed from a history; register it (or write --out).

    Registering, it prints the new version alone on standard output (the rest goes to
    standard error), so scripts can take it.
    """
    from recommender.core.catalog import Catalog
    from recommender.core.replay import Profiler
    from recommender.offline.hybrid import train_served

    cat = Catalog.load(catalog)
    from cli.history import read_history

    report, source = read_history(events, from_kafka, since, _log)
    if respect_privacy:
        from recommender.adapters.privacy_store import respect_privacy as keep_allowed

        report.events = keep_allowed(get_settings(), report.events, _log)
    if not report.events:
        raise ZmotError(f"{source}: no valid event")
    from cli.configs import resolve_config

    chosen = resolve_config(
        config, epochs=epochs, components=components, loss=loss, target=target, seed=seed
    )
    profiler = Profiler(cat, chosen.features, chosen.profile)
    model = train_served(
        report.events, cat, profiler, chosen.train, hybrid=hybrid, progress=True, log=_log
    )
    model.recent_boost = chosen.recent_boost
    if out is not None:
        model.save(out)
        typer.echo(f"model {model.version} -> {out} ({_summary(model, out)})")
        return
    from cli.model_cmd import register_trained

    root = registry or get_settings().model_dir
    if root is None:
        raise ZmotError("no place for the model: pass --out, --registry or ZMOT_MODEL_DIR")
    register_trained(
        root,
        model,
        report.events,
        activate=activate,
        source=source,
        show=_log,
        summary=lambda path: _summary(model, path),
    )


def _summary(model: Model, where: Path) -> str:
    """What `zmot train` says about a model it wrote to ``where``."""
    text = (
        f"{model.info['n_contexts']} contexts, {len(model.feature_names)} features, "
        f"{len(model.item_ids)} items"
    )
    if model.hybrid is not None:
        size = (where / "hybrid.npz").stat().st_size
        text += (
            f"; hybrid tables: {len(model.hybrid.items)} items, "
            f"{len(model.hybrid.neighbour_idx)} neighbours, {size / 1e6:.2f} MB on disk "
            f"(hybrid.npz), about {model.hybrid.memory_bytes() / 1e6:.2f} MB in each API "
            "process"
        )
    return text


@app.command()
def demo(
    users: Annotated[int, typer.Option(min=10, help="Shoppers in the demo shop.")] = 2000,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Start everything, replay a demo shop through Kafka, print offers for a repair search."""
    from cli.demo import run_demo

    run_demo(get_settings(), users=users, seed=seed, log=_log, show=typer.echo)


@app.command()
def stop() -> None:
    """Stop the API, the worker, Kafka and Redis started by `zmot demo` / `zmot infra up`."""
    from cli.demo import stop_all

    stop_all(get_settings(), log=_log)


def _report_bad(path: Path, errors: list[tuple[int, str]], shown: int = 10) -> None:
    for number, reason in errors[:shown]:
        _log(f"{path}:{number}: skipped: {reason}")
    if len(errors) > shown:
        _log(f"... and {len(errors) - shown} more bad lines")


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSON-lines event file.")],
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Events/s (default: as fast as possible).")
    ] = None,  # noqa: UP045
) -> None:
    """Produce an event file into Kafka (validated as the API does; bad lines reported)."""
    from cli.replay import produce
    from recommender.core.events import load_events

    settings = get_settings()
    report = load_events(file, require_ts=False, user_time_order=False)
    _report_bad(file, report.errors)
    sent = produce(settings, report.events, rate)
    typer.echo(
        f"replayed {sent} events to {settings.events_topic}; {report.n_bad} bad lines skipped"
    )


from cli import (  # noqa: E402  (commands of their own)
    evaluate_cmd,
    experiment_cmd,
    import_cmd,
    keys_cmd,
    lag_cmd,
    migrate_cmd,
    model_cmd,
    ope_cmd,
    profiles_cmd,
    retrain_cmd,
    tune_cmd,
)

evaluate_cmd.register(app)
keys_cmd.register(app)
import_cmd.register(app)
tune_cmd.register(app)
lag_cmd.register(app)
migrate_cmd.register(app)
model_cmd.register(app)
experiment_cmd.register(app)
ope_cmd.register(app)
retrain_cmd.register(app)
profiles_cmd.register(app)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        app()
    except ZmotError as exc:
        _err(str(exc))
        sys.exit(1)


if __name__ == "__main__":
    main()
