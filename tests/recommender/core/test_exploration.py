"""Exploration: the share of exploring slots and the exact probabilities recorded."""

from __future__ import annotations

import logging
import math
import random
import time

import pytest

from recommender.core.arbitration import OfferRequest
from recommender.core.exploration import ExplorationPolicy
from tests.recommender.core.arbitration_support import arbiter, one_per_item, profile

N = 10_000
NOW = time.time()


def test_ten_percent_of_10000_decisions_explore_each_with_its_probability(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = arbiter(
        one_per_item(),
        placements={"home": {"exploration": {"share": 0.1}}},
        seed=11,
        relevance_floor=0.0,
    )
    user = profile({"q:tv": 1.0, "q:boots": 0.5})
    request = OfferRequest(k=1, placement="home")
    with caplog.at_level(logging.INFO, logger="zmot.decisions"):
        decisions = [a.decide(user, request, NOW) for _ in range(N)]
    explored = sum(d.offers[0].policy == "explore" for d in decisions)
    # binomial(10000, 0.1): sd = 30; 5 sd either side fails by chance about once in 3.5 million
    assert abs(explored - 0.1 * N) <= 5 * math.sqrt(N * 0.1 * 0.9)
    n = len({d.offers[0].offer.offer_id for d in decisions})
    assert n > 2  # exploring reaches offers greedy never shows
    greedy_pick = next(d.offers[0] for d in decisions if d.offers[0].policy == "greedy")
    candidates = 8  # every offer (floor 0): the exploring draw is uniform over them
    for d in decisions:
        offer = d.offers[0]
        is_top = offer.offer.offer_id == greedy_pick.offer.offer_id
        expected = (0.9 if is_top else 0.0) + 0.1 / candidates
        assert offer.probability == pytest.approx(expected)
    # the recorded probability is the observed frequency
    top_share = sum(d.offers[0].offer.offer_id == greedy_pick.offer.offer_id for d in decisions)
    assert abs(top_share / N - greedy_pick.probability) < 0.02
    logged = [r.getMessage() for r in caplog.records if r.name == "zmot.decisions"]
    assert len(logged) == N
    assert all("greedy" in m or "explore" in m for m in logged)
    assert any(f"{0.1 / candidates:.6f}"[:6] in m for m in logged if "explore" in m)


def test_exploration_off_never_explores() -> None:
    a = arbiter(one_per_item(), placements={"home": {"exploration": {"share": 0}}}, seed=3)
    user = profile({"q:tv": 1.0, "q:boots": 0.5})
    decisions = [a.decide(user, OfferRequest(k=3, placement="home"), NOW) for _ in range(2000)]
    assert all(s.policy == "greedy" and s.probability == 1.0 for d in decisions for s in d.offers)
    # and a placement without an exploration block does not explore either
    other = [a.decide(user, OfferRequest(k=1, placement="ad"), NOW) for _ in range(500)]
    assert all(d.offers[0].policy == "greedy" for d in other)


def test_softmax_probabilities_are_exact_and_sum_to_one() -> None:
    policy = ExplorationPolicy(share=1.0, method="softmax", temperature=0.5)
    priorities = [4.0, 2.0, 1.0]
    weights = policy.draw_weights(priorities)
    assert sum(weights) == pytest.approx(1.0)
    assert weights[0] > weights[1] > weights[2]
    rng = random.Random(5)
    counts = [0, 0, 0]
    for _ in range(20_000):
        index, policy_name, probability = policy.choose(priorities, rng)
        counts[index] += 1
        assert policy_name == "explore" and probability == pytest.approx(weights[index])
    for i in range(3):
        assert abs(counts[i] / 20_000 - weights[i]) < 0.015
