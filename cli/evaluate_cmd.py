"""`zmot evaluate`: replay evaluation against baselines (see recommender.offline.evaluation)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Annotated, Optional

import typer

from cli.options import RespectPrivacy
from recommender.core.errors import ConfigError, ZmotError
from recommender.core.settings import get_settings


def _parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise typer.BadParameter(f"--k takes numbers like 10,20, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise typer.BadParameter("--k values must be at least 1")
    return ks


def _parse_time(text: str) -> float:
    from recommender.core.events import parse_ts

    try:
        return parse_ts(int(text) if text.isdigit() else text)
    except ValueError as exc:
        raise typer.BadParameter(f"--split-time: {exc}") from None


def register(app: typer.Typer) -> None:
    """Add the evaluate command to the zmot CLI."""

    @app.command()
    def evaluate(
        catalog: Annotated[Path, typer.Option(help="catalog.jsonl (only item_id is required).")],
        train: Annotated[Optional[Path], typer.Option(help="Training events.")] = None,  # noqa: UP045
        test: Annotated[Optional[Path], typer.Option(help="Test events.")] = None,  # noqa: UP045
        events: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(help="One event file to split (with --split-time or --split-ratio)."),
        ] = None,
        split_time: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option(help="ISO-8601 or epoch ms: earlier events train, the rest test."),
        ] = None,
        split_ratio: Annotated[
            Optional[float],  # noqa: UP045
            typer.Option(help="Share of events (by time) that train, e.g. 0.8."),
        ] = None,
        model_dir: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option("--model", help="Evaluate this model instead of training one."),
        ] = None,
        k: Annotated[str, typer.Option(help="Cut-offs, e.g. 10,20.")] = "10",
        target: Annotated[
            str,
            typer.Option(
                help="any (every item event), conversion (carts and purchases), or new: every "
                "item event on an item new to the user (the same as --items new)."
            ),
        ] = "any",
        items: Annotated[
            str,
            typer.Option(
                help="any target item; new: only items new to the user (never touched "
                "before), in each method's list as it is; discover: those new items in each "
                "list without the user's own items (a 'new for you' slot)."
            ),
        ] = "any",
        recent_boost: Annotated[
            Optional[float],  # noqa: UP045
            typer.Option(help="Blend weight of the user's own items (default: the model's)."),
        ] = None,
        config: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(help="Config from `zmot tune` (model, decay, weights, blend)."),
        ] = None,
        epochs: Annotated[Optional[int], typer.Option(min=1)] = None,  # noqa: UP045
        components: Annotated[Optional[int], typer.Option(min=2)] = None,  # noqa: UP045
        seed: Annotated[Optional[int], typer.Option()] = None,  # noqa: UP045
        out: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(help="Write report.html, PNG plots and metrics.json here."),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print one JSON document on stdout.")
        ] = False,
        dump_predictions: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(help="One JSON line per prediction with every method's list."),
        ] = None,
        max_predictions: Annotated[
            int,
            typer.Option(
                min=0,
                help="Walk at most this many predictions: above it, a stable sample of the "
                "test users (all of each one's events) is evaluated; 0: every user. The walk "
                "ranks the whole catalog per prediction and method, so this bounds its time.",
            ),
        ] = MAX_PREDICTIONS,
        respect_privacy: RespectPrivacy = False,
    ) -> None:
        """Replay test events through the live scorer and baselines; print HR/MRR/NDCG@k."""
        from cli.configs import resolve_config
        from recommender.core.catalog import Catalog
        from recommender.core.events import load_events
        from recommender.core.model import Model
        from recommender.core.replay import Profiler
        from recommender.core.runtime import resolve
        from recommender.offline.evaluation import (
            SLICES,
            EvalResult,
            Prediction,
            Recommender,
            split_events,
            user_sample,
        )
        from recommender.offline.evaluation import evaluate as run_evaluation
        from recommender.offline.hybrid import fit_ranker
        from recommender.offline.neighbours import neighbour_methods
        from recommender.offline.training import TARGET_TYPES
        from recommender.offline.training import train as fit

        if target not in ("any", "conversion", "new"):
            raise typer.BadParameter("--target must be 'any', 'conversion' or 'new'")
        if items not in SLICES:
            raise typer.BadParameter("--items must be 'any', 'new' or 'discover'")
        if target == "new":  # the spelling of --items new: item events, new items only
            target, items = "any", "new"
        ks = _parse_ks(k)
        settings = get_settings()
        cat = Catalog.load(catalog)
        if events is not None:
            if train is not None or test is not None:
                raise ConfigError("give --events (with a split) or --train/--test, not both")
            if (split_time is None) == (split_ratio is None):
                raise ConfigError("--events needs exactly one of --split-time and --split-ratio")
            report = load_events(events)
            _warn_bad(events, report.errors)
            train_events, test_events = split_events(
                report.events,
                split_time=_parse_time(split_time) if split_time is not None else None,
                split_ratio=split_ratio,
            )
        elif train is not None and test is not None:
            train_report, test_report = load_events(train), load_events(test)
            _warn_bad(train, train_report.errors)
            _warn_bad(test, test_report.errors)
            train_events, test_events = train_report.events, test_report.events
        else:
            raise ConfigError("give --train and --test, or --events with a split")
        if respect_privacy:
            from recommender.adapters.privacy_store import respect_privacy as keep_allowed

            train_events = keep_allowed(settings, train_events, _log)
            test_events = keep_allowed(settings, test_events, _log)
        if not test_events:
            raise ZmotError("no test events after the split")
        _log(f"{len(train_events)} training events, {len(test_events)} test events")

        chosen = resolve_config(
            config, epochs=epochs, components=components, target=target, seed=seed
        )
        if model_dir is not None:
            model = Model.load(model_dir)
            profiler = Profiler(cat, model.feature_config, model.profile_params)
        else:
            profiler = Profiler(cat, chosen.features, chosen.profile)
            model = fit(train_events, cat, profiler, chosen.train, progress=True)
            model.recent_boost = chosen.recent_boost

        depth = max(50, *ks)  # evaluate's default list depth
        # the extra methods rank deeper, so that `depth` of their items remain when the
        # discover slice leaves the user's own items out (the other slices cut at `depth`)
        deep = DISCOVER_DEPTH_FACTOR * depth
        extra: dict[str, Recommender] = dict(
            neighbour_methods(train_events, kind_weights=profiler.features.kind_weights, depth=deep)
        )
        hybrid = fit_ranker(
            train_events, cat, profiler, model, chosen.train, depth=deep, log=_log, progress=True
        )
        extra["hybrid"] = hybrid
        if model_dir is None and hybrid.tables.servable:
            model.hybrid = hybrid.tables  # what `zmot train` writes: `live` is what the API serves
        sample = user_sample(test_events, TARGET_TYPES[target], max_predictions)
        if sample is not None:
            n_users = len({e.user_id for e in test_events})
            _log(
                f"evaluating a sample of {len(sample)} of {n_users} test users (at most "
                f"{max_predictions} predictions: --max-predictions)"
            )
        runtime = resolve(settings, model.runtime_meta())  # after the ranker: its purchase rule
        boost = runtime.arbitration.recent_boost if recent_boost is None else recent_boost

        def write(prediction: Prediction) -> None:
            if dump is not None and (items == "any" or prediction.new):
                dump.write(json.dumps(prediction.to_json()) + "\n")

        dump: IO[str] | None = dump_predictions.open("w") if dump_predictions else None
        try:
            result = run_evaluation(
                model,
                cat,
                profiler,
                train_events,
                test_events,
                ks=ks,
                target=target,  # type: ignore[arg-type]  # checked above
                recent_boost=boost,
                purchase_exclusion_s=runtime.arbitration.purchase_exclusion_s,
                on_prediction=write if dump else None,
                progress=True,
                depth=depth,
                extra_methods=extra,
                hybrid=runtime.arbitration.hybrid,
                users=sample,
            )
        finally:
            if dump:
                dump.close()
        slices: dict[str, EvalResult] = {name: result.items(name) for name in SLICES}
        summary = slices[items].summary()
        summary["items"] = items
        summary["by_items"] = {name: part.summary() for name, part in slices.items()}
        summary["model_version"] = model.version
        summary["recent_boost"] = boost
        if sample is not None:
            summary["sampled_users"] = len(sample)
            summary["max_predictions"] = max_predictions
        if out is not None:
            from recommender.offline.report import write_report

            others = {name: part for name, part in slices.items() if name != items}
            write_report(out, slices[items], summary, model, items=items, others=others)
            _log(f"report: {out / 'report.html'}")
        if as_json:
            sys.stdout.write(json.dumps(summary) + "\n")
        else:
            _print_table(summary, ks)


MAX_PREDICTIONS = 20_000
"""``--max-predictions``'s default: the shared samples have at most 2,479 (all walked); a
large shop's figures come from a stable sample of users (README, "Measuring quality")."""

DISCOVER_DEPTH_FACTOR = 4
"""How much deeper than the other lists the extra methods rank (see ``evaluate``)."""


def _warn_bad(path: Path, errors: list[tuple[int, str]]) -> None:
    for number, reason in errors[:5]:
        _log(f"{path}:{number}: skipped: {reason}")
    if len(errors) > 5:
        _log(f"... {len(errors)} bad lines in {path} in all")


def _log(message: str) -> None:
    typer.echo(message, err=True)


def _print_table(summary: dict[str, object], ks: list[int]) -> None:
    methods = summary["methods"]
    assert isinstance(methods, dict)
    columns = [f"{m}@{k}" for k in ks for m in ("hr", "mrr", "ndcg")] + ["coverage"]
    typer.echo(f"{summary['n_predictions']} predictions (target items: {summary['items']})")
    typer.echo(f"{'method':22}" + "".join(f"{c:>10}" for c in columns))
    for name, values in methods.items():
        typer.echo(f"{name:22}" + "".join(f"{values[c]:>10.4f}" for c in columns))
