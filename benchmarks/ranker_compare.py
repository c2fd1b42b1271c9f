"""Which ranker for the hybrid: the evidence behind the default (README, "Choosing the ranker").

One evaluation per data set (defaults, time split 0.8), in which the same candidates and
signals (:mod:`recommender.core.hybrid`), fitted on the same end-of-training moments, are
ordered by three rankers, ranked at the same moments as ``recent``:

* ``logistic``: each candidate on its own (pointwise, ``fit_logistic``);
* ``softmax``: each moment's candidates as one choice (listwise conditional logit,
  ``fit_softmax``): the default;
* ``lambdarank``: LightGBM's lambdarank (trees; needs ``pip install lightgbm``, which is not a
  dependency of zmot: skipped when it is missing).

Prints HR@10 / MRR@10 with 95% bootstrap intervals over users and paired differences against
``softmax``.  ``python benchmarks/ranker_compare.py DIR ...`` where each DIR holds
``events.jsonl`` and ``catalog.jsonl`` (what ``zmot import --out DIR`` writes).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.core.catalog import Catalog
from recommender.core.events import Event, load_events
from recommender.core.hybrid import HybridParams, moment
from recommender.core.model import Model
from recommender.core.replay import Profiler
from recommender.core.runtime import profile_params
from recommender.core.settings import get_settings
from recommender.offline.evaluation import Recommender, evaluate, split_events
from recommender.offline.hybrid import Hybrid
from recommender.offline.report.stats import bootstrap
from recommender.offline.training import train as fit
from recommender.offline.tuning import Config

METRICS = ("hr@10", "mrr@10")
F64 = npt.NDArray[np.float64]


class LambdaRank(Hybrid):
    """The hybrid's candidates and signals, ordered by LightGBM lambdarank trees fitted on the
    same moments (the linear weights the parent fits are not used to rank)."""

    booster: Any = None

    def _learn(
        self, xs: list[F64], ys: list[F64], soon: list[tuple[F64, F64]]
    ) -> tuple[F64, F64, float | None]:
        import lightgbm as lgb

        data = lgb.Dataset(np.vstack(xs), np.concatenate(ys), group=[len(x) for x in xs])
        params = {
            "objective": "lambdarank",
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 20,
            "lambdarank_truncation_level": 20,
            "num_threads": 1,
            "seed": 0,
            "verbose": -1,
        }
        self.booster = lgb.train(params, data, num_boost_round=100)
        return super()._learn(xs, ys, soon)

    def __call__(self, events: Sequence[Event]) -> list[str]:
        if not events:
            return []
        profile = self.profile(events)
        names, x = moment(self.tables, self.model, profile, profile.last_ts or 0.0)
        if not names:
            return []
        order = np.argsort(-self.booster.predict(x), kind="stable")[: self.depth]
        return [names[j] for j in order.tolist()]


def compare(folder: Path) -> str:
    catalog = Catalog.load(folder / "catalog.jsonl")
    train, test = split_events(load_events(folder / "events.jsonl").events, split_ratio=0.8)
    config = Config(profile=profile_params(get_settings()))  # what `zmot evaluate` defaults to
    profiler = Profiler(catalog, config.features, config.profile)
    model: Model = fit(train, catalog, profiler, config.train)

    def fit_model(part: Sequence[Event]) -> Model:
        return fit(part, catalog, profiler, config.train)

    rankers: dict[str, Recommender] = {}
    for name in ("logistic", "softmax"):
        params = replace(HybridParams(), ranker=name)
        rankers[name] = Hybrid(train, catalog, profiler, model, fit_model=fit_model, params=params)
    try:
        rankers["lambdarank"] = LambdaRank(train, catalog, profiler, model, fit_model=fit_model)
    except ImportError:
        sys.stderr.write("lightgbm is not installed: lambdarank skipped\n")
    result = evaluate(
        model, catalog, profiler, train, test, ks=[10], extra_methods=rankers, hybrid=False
    )
    lines = [f"**{folder.name}**", "", "| ranker | slice | HR@10 | MRR@10 | vs softmax (paired) |"]
    lines.append("|---|---|---:|---:|---|")
    for label, part in (("any", result), ("new", result.only_new())):
        boot = bootstrap(part)
        for name in [*rankers, "recent"]:
            cells: list[Any] = []
            for metric in METRICS:
                low, high = boot.interval(name, metric)
                cells.append(f"{boot.estimate(name, metric):.3f} [{low:.3f}, {high:.3f}]")
            diffs = []
            if name != "softmax":
                for metric in METRICS:
                    d, low, high = boot.difference(name, "softmax", metric)
                    diffs.append(f"{metric.split('@')[0]} {d:+.3f} [{low:+.3f}, {high:+.3f}]")
            lines.append(f"| {name} | {label} | {cells[0]} | {cells[1]} | {'; '.join(diffs)} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python benchmarks/ranker_compare.py DIR ...")
    sys.stdout.write("\n\n".join(compare(Path(d)) for d in argv) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
