"""The hybrid's ranker fits: a conditional logit that recovers known weights, and a pointwise
logistic fit, on choices simulated from a known model."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recommender.offline.propensity import fit_logistic, fit_softmax

F64 = npt.NDArray[np.float64]
TRUE = np.array([2.0, -1.0, 0.0])


def choices(groups: int, seed: int = 0) -> tuple[list[F64], list[F64]]:
    """Each group: 2-30 candidates with 3 signals; one is chosen with softmax(x @ TRUE)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(groups):
        x = rng.normal(size=(int(rng.integers(2, 30)), 3))
        p = np.exp(x @ TRUE - (x @ TRUE).max())
        y = np.zeros(len(x))
        y[rng.choice(len(x), p=p / p.sum())] = 1.0
        xs.append(x)
        ys.append(y)
    return xs, ys


def test_the_conditional_logit_recovers_the_weights_that_made_the_choices() -> None:
    xs, ys = choices(3000)
    w = fit_softmax(xs, ys, l2=1.0)
    np.testing.assert_allclose(w, TRUE, atol=0.15)


def test_a_separable_choice_does_not_blow_up() -> None:
    """The first signal alone decides every choice: the weights grow but stay finite and
    rank the chosen candidate first (the backtracking Newton step keeps the fit stable)."""
    rng = np.random.default_rng(1)
    xs, ys = [], []
    for _ in range(200):
        x = rng.normal(size=(10, 2))
        y = (x[:, 0] == x[:, 0].max()).astype(np.float64)
        xs.append(x)
        ys.append(y)
    w = fit_softmax(xs, ys, l2=0.1)
    assert np.isfinite(w).all() and w[0] > 1.0 > abs(w[1])
    assert all(int(np.argmax(x @ w)) == int(np.argmax(y)) for x, y in zip(xs, ys, strict=True))


def test_empty_groups_are_skipped_and_pointwise_logistic_orders_the_same_way() -> None:
    xs, ys = choices(2000, seed=2)
    w = fit_softmax([np.zeros((0, 3)), *xs], [np.zeros(0), *ys], l2=1.0)
    pointwise = fit_logistic(np.vstack(xs), np.concatenate(ys), l2=1.0)[:-1]
    assert np.sign(w[0]) == np.sign(pointwise[0]) == 1.0
    assert np.sign(w[1]) == np.sign(pointwise[1]) == -1.0
