"""What the engine learns from data besides the embeddings: propensity calibration, complements.

**Calibration.** The model's raw score ranks items but is no probability. Arbitration needs
one (priority = propensity x value x ...), so training fits a logistic (Platt) map
``p = sigmoid(a * raw + c * recent + b)`` on contexts held out from the LightFM fit: ``raw`` is
the model score of an item minus the mean over all items (the user's own bias term is the same
for every item, so only this margin is comparable across users; an uninformative profile has
small margins and so low propensities), ``recent`` the item's own weight in the profile
relative to the strongest item (what :class:`~recommender.core.scoring.ItemScorer` blends in),
and the label says whether the item is among the user's next target events. Negatives are
sampled, and the intercept is corrected by the log of the sampling rate so that ``p`` is the
probability for any item, not for a sampled one.

**Complements.** ``P(next category | bought category)``: after each purchase, the categories
of the same user's next target events (within a horizon, other categories only: the same
category is a substitute). Nothing here knows what a TV is; the sequences say what follows.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from recommender.core.calibration import Calibration
from recommender.core.catalog import Catalog
from recommender.core.events import Event


def fit_logistic(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], l2: float = 1e-3, iters: int = 50
) -> npt.NDArray[np.float64]:
    """Weights (last one the intercept) of an L2-regularised logistic regression (Newton)."""
    design = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(design.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -50, 50)))
        grad = design.T @ (p - y) + l2 * w
        hess = (design * (p * (1 - p))[:, None]).T @ design + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


def fit_softmax(
    xs: Sequence[npt.NDArray[np.float64]],
    targets: Sequence[npt.NDArray[np.float64]],
    l2: float = 1.0,
    iters: int = 50,
) -> npt.NDArray[np.float64]:
    """Weights of an L2-regularised conditional logit (Newton): each group ``xs[g]`` (rows:
    candidates, columns: signals) is one choice, ``targets[g]`` marks the chosen rows, and the
    model is a softmax of ``x @ w`` over the group's rows. A listwise objective: only how a
    group's candidates compare counts, so there is no intercept."""
    sizes = np.array([len(x) for x in xs])
    keep = sizes > 0
    x = np.vstack([g for g, k in zip(xs, keep, strict=True) if k])
    y = np.concatenate([t for t, k in zip(targets, keep, strict=True) if k])
    starts = np.concatenate(([0], np.cumsum(sizes[keep])[:-1]))
    group = np.repeat(np.arange(len(starts)), sizes[keep])
    chosen = np.add.reduceat(y, starts)

    def state(w: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        logit = x @ w
        logit = logit - np.maximum.reduceat(logit, starts)[group]
        e = np.exp(logit)
        total = np.add.reduceat(e, starts)
        loss = float(chosen @ np.log(total) - y @ logit) + 0.5 * l2 * float(w @ w)
        return loss, e / total[group] * chosen[group]

    w = np.zeros(x.shape[1])
    loss, p = state(w)
    for _ in range(iters):
        grad = x.T @ (p - y) + l2 * w
        xp = x * p[:, None]
        by_group = np.add.reduceat(xp, starts) / np.maximum(chosen, 1e-12)[:, None]
        hess = x.T @ xp - (by_group * chosen[:, None]).T @ by_group + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        for _ in range(30):  # backtrack: a full Newton step can overshoot on separable data
            new_loss, new_p = state(w - step)
            if new_loss <= loss:
                break
            step = step / 2
        else:
            break
        w, loss, p = w - step, new_loss, new_p
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


def fit_calibration(
    raw_scores: Sequence[npt.NDArray[np.float64]],
    recents: Sequence[npt.NDArray[np.float64]],
    positives: Sequence[Sequence[int]],
    *,
    negatives: int = 20,
    seed: int = 0,
) -> Calibration | None:
    """Platt map from held-out contexts (each: scores and recency of every item, positives)."""

    def score(
        context: int, at: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return raw_scores[context][at], recents[context][at]

    n_items = len(raw_scores[0]) if len(raw_scores) else 0
    return fit_calibration_at(n_items, positives, score, negatives=negatives, seed=seed)


ContextScores = Callable[
    [int, npt.NDArray[np.intp]], tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
]
"""``(context, item indices) -> (raw scores, recency)`` of those items in that context."""


def fit_calibration_at(
    n_items: int,
    positives: Sequence[Sequence[int]],
    score: ContextScores,
    *,
    negatives: int = 20,
    seed: int = 0,
) -> Calibration | None:
    """:func:`fit_calibration` reading only the items it samples: ``score`` gives a context's
    raw score and recency at the given item indices (each context's positives, then its
    ``negatives`` uniform draws over ``n_items``), so a large catalog costs no dense vector per
    context. The same draws and the same points as :func:`fit_calibration` on full vectors."""
    rng = np.random.default_rng(seed)
    xs: list[tuple[float, float]] = []
    ys: list[float] = []
    rate = 1.0
    for context, pos in enumerate(positives):
        pos_set = set(pos)
        pool = n_items - len(pos_set)
        draws = (
            [int(j) for j in rng.integers(0, n_items, size=negatives) if j not in pos_set]
            if pool > 0
            else []
        )
        at = np.array([*pos_set, *draws], dtype=np.intp)
        raw, recent = score(context, at) if len(at) else (np.zeros(0), np.zeros(0))
        for r, c in zip(raw.tolist(), recent.tolist(), strict=True):
            xs.append((float(r), float(c)))
        ys += [1.0] * len(pos_set) + [0.0] * len(draws)
        if pool > 0:
            rate = min(1.0, negatives / pool)
    if sum(ys) < 5 or len(ys) - sum(ys) < 5:
        return None
    w = fit_logistic(np.array(xs), np.array(ys))
    # negatives were kept with probability ~rate: undo it in the intercept (prior correction)
    return Calibration(
        a=float(w[0]), c=float(w[1]), b=float(w[2] + math.log(rate)), fitted=True, n=len(ys)
    )


def learn_complements(
    events: Iterable[Event],
    catalog: Catalog,
    target_types: frozenset[str],
    horizon: int = 5,
    min_count: int = 3,
) -> dict[str, dict[str, float]]:
    """``{bought category: {next category: share}}`` from purchase sequences (see module)."""
    open_after: dict[str, list[tuple[str, int]]] = {}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for event in events:
        if event.item_id is None or event.type not in target_types:
            continue
        item = catalog.get(event.item_id)
        category = item.category if item else None
        if category is None:
            continue
        still: list[tuple[str, int]] = []
        for bought, left in open_after.get(event.user_id, []):
            if category != bought:
                counts[bought][category] += 1
            if left > 1:
                still.append((bought, left - 1))
        if event.type == "purchase":
            still.append((category, horizon))
        open_after[event.user_id] = still
    out: dict[str, dict[str, float]] = {}
    for bought, following in counts.items():
        total = sum(following.values())
        kept = {c: n / total for c, n in following.most_common() if n >= min_count}
        if kept:
            out[bought] = {c: round(v, 6) for c, v in kept.items()}
    return out
