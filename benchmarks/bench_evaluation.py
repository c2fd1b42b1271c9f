"""Throughput of the replay evaluation (`zmot evaluate`) in test events per second.

Generates a demo shop with ``--users`` shoppers, splits it by time (70% train), trains a model,
then times three passes over the same test events in this one run:

1. the baseline: replaying the test events through the worker's profile function only (the
   least any replay evaluation must do);
2. the full evaluation (live, frozen, popular, popular-in-category, recent) at k = 10,20;
3. the same with the item-neighbourhood baselines ``zmot evaluate`` adds (covisit,
   session_knn), whose fitting on the training events is timed apart;
4. writing the HTML report with its bootstrap confidence intervals.

Prints the figures and appends them to BENCHMARKS.md with the machine, date and command.

    python benchmarks/bench_evaluation.py [--users 6000] [--epochs 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import append_section, command_line, machine, now_utc  # noqa: E402
from recommender.core.catalog import Catalog  # noqa: E402
from recommender.core.events import load_events  # noqa: E402
from recommender.core.profile import Profile  # noqa: E402
from recommender.core.replay import Profiler  # noqa: E402
from recommender.offline.evaluation import evaluate, split_events  # noqa: E402
from recommender.offline.neighbours import neighbour_methods  # noqa: E402
from recommender.offline.report import write_report  # noqa: E402
from recommender.offline.synthetic import generate  # noqa: E402
from recommender.offline.training import TrainConfig, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        generate(data, users=args.users, seed=11)
        catalog = Catalog.load(data / "catalog.jsonl")
        events = load_events(data / "events.jsonl").events
        train_events, test_events = split_events(events, split_ratio=0.7)
        model = train(train_events, catalog, Profiler(catalog), TrainConfig(epochs=args.epochs))

        profiler = Profiler(catalog)
        t0 = time.perf_counter()
        profiles: dict[str, Profile] = {}
        for event in test_events:
            profiler.apply(profiles.setdefault(event.user_id, Profile()), event)
        replay_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        result = evaluate(model, catalog, Profiler(catalog), train_events, test_events, ks=[10, 20])
        eval_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        kinds = Profiler(catalog).features.kind_weights
        neighbours = neighbour_methods(train_events, kind_weights=kinds, depth=50)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        both = evaluate(
            model,
            catalog,
            Profiler(catalog),
            train_events,
            test_events,
            ks=[10, 20],
            extra_methods=neighbours,
        )
        both_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        write_report(data / "report", result, result.summary(), model, progress=False)
        report_s = time.perf_counter() - t0

    n_test, n_pred = len(test_events), result.n_predictions
    rows = [
        ("replay test events through the profile function (baseline)", replay_s, n_test),
        (
            f"evaluate: {len(result.methods)} methods ({', '.join(result.methods)}) at k=10,20,"
            " lists 50 deep (incl. the replay)",
            eval_s,
            n_test,
        ),
        (
            f"fit {', '.join(neighbours)} on the {len(train_events)} training events",
            fit_s,
            n_test,
        ),
        (
            f"evaluate: the same + {', '.join(neighbours)} ({len(both.methods)} methods)",
            both_s,
            n_test,
        ),
        ("report: bootstrap CIs (300 rounds) + 4 plots + HTML", report_s, n_test),
    ]
    table = [
        "| step | seconds | test events/s |",
        "|---|---:|---:|",
        *[f"| {name} | {s:.2f} | {n / s:,.0f} |" for name, s, n in rows],
    ]
    text = "\n".join(
        [
            f"## Evaluation throughput ({now_utc()})",
            "",
            f"- command: `{command_line()}`",
            f"- machine: {machine()}",
            f"- data: demo shop, {args.users} users, {len(events)} events; time split 70/30:"
            f" {len(train_events)} train, {n_test} test events, {n_pred} predictions;"
            f" {len(model.item_ids)} items, {len(model.feature_names)} features,"
            f" {model.feature_embeddings.shape[1]} dimensions",
            "",
            *table,
            "",
            f"Evaluation: {n_pred / eval_s:,.0f} predictions/s; the full evaluation takes"
            f" {eval_s / replay_s:.1f}x the bare replay; with {', '.join(neighbours)}"
            f" {both.n_predictions / both_s:,.0f} predictions/s ({both_s / eval_s:.2f}x the"
            f" time, plus {fit_s:.1f} s to fit them).",
        ]
    )
    print(text)  # noqa: T201
    if not args.no_write:
        append_section(text)


if __name__ == "__main__":
    main()
