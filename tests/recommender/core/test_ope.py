"""Off-policy evaluation, known answers: a synthetic logging policy with known click rates."""

from __future__ import annotations

import random

import pytest

from recommender.core.errors import ConfigError
from recommender.core.ope import Logged, TablePolicy, evaluate, table_policy

CLICK_RATE = {"A": 0.10, "B": 0.05, "C": 0.20}
LOGGING = {"A": 0.5, "B": 0.3, "C": 0.2}


def logged_sample(n: int, seed: int) -> list[Logged]:
    rng = random.Random(seed)
    offers, probs = list(LOGGING), list(LOGGING.values())
    out = []
    for _ in range(n):
        offer = rng.choices(offers, probs)[0]
        out.append(Logged(offer, LOGGING[offer], float(rng.random() < CLICK_RATE[offer])))
    return out


@pytest.mark.parametrize(
    ("candidate", "truth"),
    [
        ({"C": 1.0}, 0.20),  # always the best offer
        ({"A": 0.2, "B": 0.2, "C": 0.6}, 0.2 * 0.10 + 0.2 * 0.05 + 0.6 * 0.20),
        (LOGGING, 0.5 * 0.10 + 0.3 * 0.05 + 0.2 * 0.20),  # the logging policy itself
    ],
)
def test_ips_and_snips_recover_the_candidates_true_rate(
    candidate: dict[str, float], truth: float
) -> None:
    result = evaluate(logged_sample(20_000, seed=11), TablePolicy(candidate))
    assert result.ips.low <= truth <= result.ips.high
    assert result.snips.low <= truth <= result.snips.high
    assert abs(result.ips.value - truth) < 0.02
    assert result.n == 20_000 and result.unsupported == 0


def test_effective_sample_size_is_exact_for_a_known_weighting() -> None:
    logged = [Logged("A", 0.5, 1.0), Logged("A", 0.5, 0.0), Logged("B", 0.25, 0.0)]
    result = evaluate(logged, TablePolicy({"B": 1.0}))
    # weights 0, 0, 4: one sample's worth; IPS = 0; SNIPS = 0 / 4
    assert result.effective_sample_size == pytest.approx(1.0)
    assert result.ips.value == 0.0 and result.snips.value == 0.0
    same = evaluate(logged, TablePolicy({"A": 0.5, "B": 0.25}))  # = logging: all weights 1
    assert same.effective_sample_size == pytest.approx(3.0)
    assert same.ips.value == pytest.approx(1 / 3) and same.snips.value == pytest.approx(1 / 3)


def test_the_candidate_file_is_checked() -> None:
    assert table_policy({"policy": {"A": 0.5, "B": 0.5}}).probability("C") == 0.0
    with pytest.raises(ConfigError, match="policy.A: must be a probability"):
        table_policy({"policy": {"A": 2}})
    with pytest.raises(ConfigError, match="sum to 1.5 > 1"):
        table_policy({"policy": {"A": 0.7, "B": 0.8}})
    with pytest.raises(ConfigError, match="no logged decision"):
        evaluate([Logged("A", 0.0, 1.0)], TablePolicy({"A": 1.0}))
