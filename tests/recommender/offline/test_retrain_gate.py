"""The retraining gate on the demo shop: a deliberately worse model is refused, an equal one
passes, the allowed drop is respected."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recommender.core.replay import Profiler
from recommender.offline.evaluation import split_events
from recommender.offline.retrain import quality_gate
from recommender.offline.training import TrainConfig, train
from tests.conftest import DemoShop


@pytest.fixture(scope="module")
def split(demo_shop: DemoShop) -> tuple[list, list]:  # type: ignore[type-arg]
    return split_events(demo_shop.events, split_ratio=0.9)


def test_gate_refuses_a_deliberately_worse_model_and_passes_an_equal_one(
    demo_shop: DemoShop,
    split: tuple[list, list],  # type: ignore[type-arg]
) -> None:
    early, fresh = split
    good = train(early, demo_shop.catalog, Profiler(demo_shop.catalog), TrainConfig(epochs=5))
    # The same model with its item vectors and biases shuffled among items: what it learned
    # now points at the wrong items.
    order = np.random.default_rng(1).permutation(len(good.item_ids))
    worse = replace(
        good,
        version="shuffled",
        item_vectors=good.item_vectors[order],
        item_biases=good.item_biases[order],
    )
    refused = quality_gate(worse, good, demo_shop.catalog, early, fresh)
    assert not refused.passed, refused.describe()
    assert refused.candidate < refused.current and refused.n_predictions > 100
    assert "REFUSED" in refused.describe()

    same = quality_gate(good, good, demo_shop.catalog, early, fresh)
    assert same.passed and same.candidate == same.current
    lenient = quality_gate(worse, good, demo_shop.catalog, early, fresh, max_drop=refused.current)
    assert lenient.passed  # allowed to drop all the way: the threshold is what decides
