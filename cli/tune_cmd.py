"""`zmot tune`: search the main knobs on a validation split of the training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.options import RespectPrivacy
from recommender.core.errors import ConfigError
from recommender.core.settings import get_settings


def register(app: typer.Typer) -> None:
    """Add the tune command to the zmot CLI."""

    @app.command()
    def tune(
        catalog: Annotated[Path, typer.Option(help="catalog.jsonl")],
        out: Annotated[Path, typer.Option(help="Where to write the best config (JSON).")],
        train: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(help="Training events; the test split is never read."),
        ] = None,
        events: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(help="One file: only its first --split-ratio (by time) is used."),
        ] = None,
        split_ratio: Annotated[float, typer.Option(help="Train share of --events.")] = 0.8,
        validation_ratio: Annotated[
            float, typer.Option(help="Share of the training events that fit; the rest validate.")
        ] = 0.8,
        budget_minutes: Annotated[float, typer.Option(min=0.1)] = 25.0,
        max_trials: Annotated[int, typer.Option(min=1)] = 200,
        k: Annotated[int, typer.Option(min=1)] = 10,
        metric: Annotated[str, typer.Option(help="hr, mrr or ndcg.")] = "hr",
        target: Annotated[str, typer.Option(help="any or conversion.")] = "any",
        seed: Annotated[int, typer.Option()] = 0,
        respect_privacy: RespectPrivacy = False,
    ) -> None:
        """Random search over embedding size, loss, epochs, half-life, top-N, event weights
        and the recency blend; writes the best config for `zmot train --config`."""
        from recommender.core.catalog import Catalog
        from recommender.core.events import load_events
        from recommender.core.runtime import resolve
        from recommender.offline.evaluation import split_events
        from recommender.offline.tuning import tune as search

        if metric not in ("hr", "mrr", "ndcg"):
            raise typer.BadParameter("--metric must be hr, mrr or ndcg")
        if target not in ("any", "conversion"):
            raise typer.BadParameter("--target must be 'any' or 'conversion'")
        if (train is None) == (events is None):
            raise ConfigError("give --train, or --events with --split-ratio")
        cat = Catalog.load(catalog)
        if train is not None:
            train_events = load_events(train).events
        else:
            assert events is not None
            train_events, _ = split_events(load_events(events).events, split_ratio=split_ratio)
        settings = get_settings()
        if respect_privacy:
            from recommender.adapters.privacy_store import respect_privacy as keep_allowed

            train_events = keep_allowed(settings, train_events, lambda m: typer.echo(m, err=True))
        trials = search(
            train_events,
            cat,
            budget_s=budget_minutes * 60.0,
            max_trials=max_trials,
            validation_ratio=validation_ratio,
            k=k,
            metric=metric,
            target=target,  # type: ignore[arg-type]  # checked above
            purchase_exclusion_s=resolve(settings).arbitration.purchase_exclusion_s,
            seed=seed,
            log=lambda m: typer.echo(m, err=True),
        )
        if not trials:
            raise ConfigError("no trial finished within the budget")
        best = trials[0]
        document = {
            "config": best.config.to_dict(),
            "validation": {f"{metric}@{k}": best.score, **best.metrics},
            "trials": len(trials),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2), encoding="utf-8")
        typer.echo(f"best {metric}@{k} on validation: {best.score:.4f} -> {out}")
