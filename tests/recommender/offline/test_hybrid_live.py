"""``zmot evaluate``'s ``live`` ranks a ``--hybrid`` model as the API's arbiter scores it."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.core.arbitration import Arbiter
from recommender.core.catalog import load_catalog
from recommender.core.events import load_events
from recommender.core.hybrid import HybridScorer
from recommender.core.model import Model
from recommender.core.offers import catalog_offers
from recommender.core.replay import Profiler
from recommender.core.scoring import ItemScorer
from recommender.offline.evaluation import Prediction, evaluate, split_events
from tests.support.covisit_shop import train_hybrid


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return train_hybrid(tmp_path_factory.mktemp("covisit"))


def test_live_is_what_the_arbiter_scores(trained: tuple[Path, Path]) -> None:
    model_dir, catalog_path = trained
    model, catalog = Model.load(model_dir), load_catalog(catalog_path)
    events = load_events(catalog_path.parent / "events.jsonl").events
    train, test = split_events(events, split_ratio=0.8)
    profiler = Profiler(catalog, model.feature_config, model.profile_params)
    seen: list[Prediction] = []
    evaluate(model, catalog, profiler, train, test, ks=(5,), on_prediction=seen.append)
    arbiter = Arbiter(model, catalog, catalog_offers(catalog))
    assert isinstance(arbiter.scorer, HybridScorer)
    plain = ItemScorer(model, purchase_exclusion_s=arbiter.config.purchase_exclusion_s)
    differs = 0
    assert len(seen) > 50
    for p in seen:
        before = [e for e in events if e.user_id == p.user_id and (e.ts or 0.0) < p.ts]
        profile = profiler.replay(before)[p.user_id] if before else None
        top = arbiter.scorer.top(profile, 5, p.ts)
        if top is None:
            continue  # nothing known yet: evaluation lists the popular items
        assert p.lists["live"] == [model.item_ids[i] for i in top]
        differs += top != plain.top(profile, 5, p.ts)
    assert differs  # the hybrid ranker, not the plain model, made those lists
