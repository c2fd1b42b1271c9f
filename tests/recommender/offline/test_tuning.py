"""`zmot tune`'s search: bounded, validation-only, and its config round-trips into training."""

from __future__ import annotations

import json
from pathlib import Path

from recommender.core.catalog import Catalog
from recommender.offline.evaluation import split_events
from recommender.offline.tuning import BOOSTS, Config, tune
from tests.recommender.offline.test_evaluation import catalog, histories


def test_search_is_bounded_sorted_and_starts_from_the_defaults(tmp_path: Path) -> None:
    cat: Catalog = catalog()
    train_part, test_part = split_events(histories(users=80), split_ratio=0.75)
    test_users = {e.user_id for e in test_part}
    # tune only ever sees the training part; its validation is cut from it by time
    trials = tune(train_part, cat, budget_s=600, max_trials=2, seed=1)
    assert len(trials) == 2 * len(BOOSTS)
    scores = [t.score for t in trials]
    assert scores == sorted(scores, reverse=True)
    # the defaults are the first trial, so tuning never does worse than them on validation
    assert any(t.config.train == Config().train for t in trials)
    best = trials[0].config
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"config": best.to_dict()}))
    assert Config.load(path) == best
    assert test_users  # the split really held users out


def test_budget_stops_the_search() -> None:
    cat = catalog()
    trials = tune(histories(users=60), cat, budget_s=0.001, max_trials=50)
    assert len(trials) == len(BOOSTS)  # the first trial always runs, then the budget is spent
