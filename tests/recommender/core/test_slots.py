"""The greedy pass of ``fill_slots`` picks what the slot-by-slot pass picks without exploring."""

from __future__ import annotations

import random

import numpy as np
import pytest

from recommender.core.arbitration.slots import _by_slot, _greedy, fill_slots
from recommender.core.arbitration.types import Candidate, OfferRequest
from recommender.core.exploration import ExplorationPolicy
from recommender.core.offers import OfferSpec
from recommender.core.placements import Placement


def _candidate(j: int) -> Candidate:
    spec = OfferSpec(offer_id=f"o{j}", item_id=f"i{j}", title=f"offer {j}")
    return Candidate(spec, j, f"i{j}", None, None, 1.0, None)


@pytest.mark.parametrize("seed", range(40))
def test_greedy_pass_equals_the_slot_by_slot_pass(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 30))
    items = rng.integers(0, 12, size=n)  # repeated items and categories, some without one
    categories = rng.integers(-1, 4, size=12)
    order = rng.permutation(n)
    priority = np.round(rng.normal(size=n), 1)
    placement = Placement(name="p", exploration=ExplorationPolicy(share=0.0))
    for k in (0, 1, 3, 7, 40):
        for same in (False, True):
            request = OfferRequest(k=k, same_category=same)
            want = _by_slot(
                order,
                items[order],
                categories[items[order]],
                priority,
                _candidate,
                k,
                placement,
                request,
                random.Random(1),
            )
            got = _greedy(
                order,
                items[order],
                categories[items[order]],
                _candidate,
                k,
                placement,
                request,
                random.Random(1),
            )
            assert got == want
            via = fill_slots(
                order,
                items,
                priority,
                _candidate,
                k,
                placement,
                request,
                categories,
                random.Random(1),
            )
            assert via == want
