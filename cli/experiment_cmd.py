"""`zmot experiment report NAME [--json]`: per-arm figures of an experiment, from the counters
the worker attributes (Redis), arms as ZMOT_EXPERIMENTS_PATH names them."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from recommender.core.attribution import ArmFigures, experiment_report
from recommender.core.errors import ConfigError
from recommender.core.experiments import load_experiments
from recommender.core.settings import Settings, get_settings

experiment_app = typer.Typer(help="Online experiments: per-arm reports.", no_args_is_help=True)


async def read_figures(settings: Settings, experiment: str, arms: list[str]) -> list[ArmFigures]:
    from recommender.adapters.feedback_store import FeedbackStore
    from recommender.adapters.redis_client import client_for, close

    client = client_for(settings)
    try:
        store = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
        return await store.arm_figures(experiment, arms)
    finally:
        await close(client)


def _pct(value: float | None, interval: Any) -> str:
    if value is None:
        return "-"
    low, high = interval
    return f"{value:.2%} [{low:.2%}, {high:.2%}]"


def report_table(document: dict[str, Any]) -> str:
    lines = [
        f"experiment {document['experiment']} (control: {document['control']})",
        f"{'arm':<14} {'impr':>8} {'clicks':>7} {'CTR [95%]':>28} {'conv':>6} "
        f"{'conv rate [95%]':>28} {'revenue':>10}",
    ]
    for arm in document["arms"]:
        lines.append(
            f"{arm['arm']:<14} {arm['impressions']:>8} {arm['clicks']:>7} "
            f"{_pct(arm['ctr'], arm['ctr_95']):>28} {arm['conversions']:>6} "
            f"{_pct(arm['conversion_rate'], arm['conversion_rate_95']):>28} "
            f"{arm['revenue']:>10.2f}"
        )
    for arm in document["arms"]:
        if "verdict_ctr" in arm:
            lines.append(
                f"{arm['arm']}: CTR {arm['verdict_ctr']}; conversion {arm['verdict_conversion']}"
            )
    return "\n".join(lines)


@experiment_app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="The experiment's name in ZMOT_EXPERIMENTS_PATH.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per arm: impressions, clicks, CTR, carts, conversions, revenue, 95% intervals, verdict."""
    settings = get_settings()
    experiments = load_experiments(settings.experiments_path)
    found = [e for e in experiments.items if e.name == name]
    if not found:
        where = settings.experiments_path or "ZMOT_EXPERIMENTS_PATH (unset)"
        raise ConfigError(f"no experiment {name!r} in {where}")
    arms = [a.name for a in found[0].arms]
    figures = asyncio.run(read_figures(settings, name, arms))
    document = experiment_report(name, figures)
    typer.echo(json.dumps(document, indent=1) if as_json else report_table(document))


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
