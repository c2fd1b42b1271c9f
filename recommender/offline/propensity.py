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
from collections.abc import Iterable, Sequence

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


def fit_calibration(
    raw_scores: Sequence[npt.NDArray[np.float64]],
    recents: Sequence[npt.NDArray[np.float64]],
    positives: Sequence[Sequence[int]],
    *,
    negatives: int = 20,
    seed: int = 0,
) -> Calibration | None:
    """Platt map from held-out contexts (each: scores and recency of every item, positives)."""
    rng = np.random.default_rng(seed)
    xs: list[tuple[float, float]] = []
    ys: list[float] = []
    rate = 1.0
    for raw, recent, pos in zip(raw_scores, recents, positives, strict=True):
        n_items = len(raw)
        pos_set = set(pos)
        for i in pos_set:
            xs.append((float(raw[i]), float(recent[i])))
            ys.append(1.0)
        pool = n_items - len(pos_set)
        if pool <= 0:
            continue
        draws = [int(j) for j in rng.integers(0, n_items, size=negatives) if j not in pos_set]
        for j in draws:
            xs.append((float(raw[j]), float(recent[j])))
            ys.append(0.0)
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
