"""Rules.applicable remembers its answer per stage, placement and channel until an offer starts
or ends: on random offer windows, requests and instants (the exact start and end instants,
times going back and forth), it answers what the offer table says at that instant."""

from __future__ import annotations

import random

import numpy as np
import pytest

from recommender.core.arbitration import OfferRequest
from recommender.core.placements import Placement
from tests.recommender.core.arbitration_support import ITEMS, arbiter

T0 = 1_770_000_000.0
STAGES = ["stimulus", "zmot", "fmot", "smot", "umot"]
CHANNELS = ["web", "app", "email", "store", "ad"]


def random_rows(rng: random.Random) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n, item in enumerate(ITEMS):
        row: dict[str, object] = {"offer_id": f"o-{n}", "item_id": item.item_id}
        start = T0 + rng.choice([0, 10, 20, 30])
        if rng.random() < 0.6:
            row["starts_at"] = start
        if rng.random() < 0.6:
            row["ends_at"] = start + rng.choice([5, 10, 25])
        if rng.random() < 0.4:
            row["stages"] = rng.sample(STAGES, rng.randint(1, 3))
        if rng.random() < 0.4:
            row["channels"] = rng.sample(CHANNELS, rng.randint(1, 2))
        if rng.random() < 0.4:
            row["placements"] = rng.sample(["home", "cart"], 1)
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(25))
def test_remembered_answers_are_the_tables_at_every_instant(seed: int) -> None:
    rng = random.Random(seed)
    rules = arbiter(random_rows(rng)).rules
    bounds = [T0 + s for s in (0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55)]
    instants = [t + d for t in bounds for d in (-1e-6, 0.0, 1e-6, 2.5)] + [T0 - 100, T0 + 1e6]
    for _ in range(400):
        now = rng.choice(instants)
        placement = Placement(name="p", channels=frozenset(rng.sample(CHANNELS, rng.randint(0, 2))))
        request = OfferRequest(
            3, rng.choice([None, "home", "cart", "other"]), rng.choice([None, *CHANNELS])
        )
        stage = rng.choice(STAGES)
        got = rules.applicable(stage, placement, request, now)
        np.testing.assert_array_equal(got, rules._applicable_now(stage, placement, request, now))
        assert not got.flags.writeable  # shared between requests: nobody may change it
