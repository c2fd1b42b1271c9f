"""The report's statistics: bootstrap intervals over users, verdicts, HR by k and by history.

Confidence intervals come from a bootstrap over users (a user's predictions are resampled
together, since they are not independent). It is vectorised: every method's hits, reciprocal
ranks and NDCG gains are summed per user once, and a resample of users is then a weighted sum
of those rows, so hundreds of rounds over 100k predictions take well under a second. Every
method is measured on the same resamples, which also gives paired intervals of differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from recommender.offline.evaluation import EvalResult

F64 = npt.NDArray[np.float64]
Outcome = Literal["beats", "does not beat", "not distinguishable"]

LEVEL = 0.95
REFERENCE = "live"
HISTORY_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 2),
    (3, 5),
    (6, 10),
    (11, 20),
    (21, 50),
    (51, None),
)


# --- bootstrap -------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserSums:
    """Per-user sums of every method's hits, reciprocal ranks and NDCG gains at every k.

    A metric over any multiset of users is ``sum(w_u * sums_u) / sum(w_u * counts_u)``, with
    ``w_u`` how often user ``u`` was drawn; all ones gives the full-sample metric, which equals
    :meth:`EvalResult.method_metrics`.
    """

    methods: list[str]
    metrics: list[str]
    sums: F64  # (n_users, n_methods * n_metrics), method-major
    counts: F64  # (n_users,) predictions per user

    @classmethod
    def of(cls, result: EvalResult) -> UserSums:
        n_users = _n_users(result)
        users = result.users.astype(np.intp)
        metrics = [f"{name}@{k}" for k in result.ks for name in ("hr", "mrr", "ndcg")]
        columns: list[F64] = []
        for j in range(len(result.methods)):
            rank = result.ranks[:, j].astype(np.float64)
            safe = np.maximum(rank, 0.0)  # misses (-1) get no gain, and no division by zero
            for k in result.ks:
                hit = (rank >= 0) & (rank < k)
                for gain in (
                    hit.astype(np.float64),
                    np.where(hit, 1.0 / (safe + 1.0), 0.0),
                    np.where(hit, 1.0 / np.log2(safe + 2.0), 0.0),
                ):
                    columns.append(
                        np.bincount(users, weights=gain, minlength=n_users).astype(np.float64)
                    )
        sums = np.stack(columns, axis=1) if columns else np.zeros((n_users, 0))
        counts = np.bincount(users, minlength=n_users).astype(np.float64)
        return cls(list(result.methods), metrics, sums, counts)

    def evaluate(self, weights: F64) -> F64:
        """Metrics for each row of user weights (rounds, n_users) -> (rounds, methods, metrics)."""
        totals = weights @ self.sums
        n = np.maximum(weights @ self.counts, 1.0)
        values: F64 = (totals / n[:, None]).reshape(
            weights.shape[0], len(self.methods), len(self.metrics)
        )
        return values


@dataclass(frozen=True)
class Bootstrap:
    """Every metric of every method under the same ``rounds`` resamples of users."""

    methods: list[str]
    metrics: list[str]
    values: F64  # (rounds, n_methods, n_metrics)
    point: F64  # (n_methods, n_metrics), the full sample

    def estimate(self, method: str, metric: str) -> float:
        return float(self.point[self.methods.index(method), self.metrics.index(metric)])

    def samples(self, method: str, metric: str) -> F64:
        out: F64 = self.values[:, self.methods.index(method), self.metrics.index(metric)]
        return out

    def interval(self, method: str, metric: str, level: float = LEVEL) -> tuple[float, float]:
        """Percentile interval; NaN when there was nothing to resample."""
        return _quantiles(self.samples(method, metric), level)

    def difference(
        self, method: str, other: str, metric: str, level: float = LEVEL
    ) -> tuple[float, float, float]:
        """``method - other`` and its paired interval (both measured on the same users)."""
        point = self.estimate(method, metric) - self.estimate(other, metric)
        low, high = _quantiles(self.samples(method, metric) - self.samples(other, metric), level)
        return point, low, high


def bootstrap(
    result: EvalResult, *, rounds: int = 300, seed: int = 0, progress: bool = False
) -> Bootstrap:
    """Resample users with replacement ``rounds`` times and measure every method on each draw.

    Users are drawn exactly as the reference loop in tests/recommender/offline/test_report.py draws
    them (same generator, same calls), so with the same seed both give the same intervals.
    """
    from tqdm import tqdm

    sums = UserSums.of(result)
    n_users = sums.counts.shape[0]
    point = sums.evaluate(np.ones((1, n_users)))[0]
    if n_users == 0 or result.n_predictions == 0 or rounds < 1:
        empty = np.full((0, len(sums.methods), len(sums.metrics)), np.nan)
        return Bootstrap(sums.methods, sums.metrics, empty, point)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(rounds, 4_000_000 // n_users))  # weights of at most ~32 MB at a time
    parts: list[F64] = []
    with tqdm(total=rounds, desc="bootstrap", unit="round", delay=1.0, disable=not progress) as bar:
        for start in range(0, rounds, chunk):
            size = min(chunk, rounds - start)
            weights = np.empty((size, n_users))
            for i in range(size):
                weights[i] = np.bincount(rng.integers(0, n_users, n_users), minlength=n_users)
            parts.append(sums.evaluate(weights))
            bar.update(size)
    return Bootstrap(sums.methods, sums.metrics, np.concatenate(parts), point)


def _n_users(result: EvalResult) -> int:
    top = int(result.users.max()) + 1 if result.users.size else 0
    return max(len(result.user_ids), top)


def _quantiles(values: F64, level: float) -> tuple[float, float]:
    if values.size == 0 or not np.isfinite(values).all():
        return (math.nan, math.nan)
    low, high = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


# --- verdict ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Does the reference method ('live') beat one baseline on one metric?"""

    method: str
    baseline: str
    metric: str
    outcome: Outcome
    value: float
    interval: tuple[float, float]
    baseline_value: float
    baseline_interval: tuple[float, float]
    difference: tuple[float, float, float]  # method - baseline, paired low, paired high

    @property
    def overlap(self) -> bool:
        (a, b), (c, d) = self.interval, self.baseline_interval
        return a <= d and c <= b

    def sentence(self) -> str:
        ours = f"{self.value:.4f} {bracket(self.interval)}"
        theirs = f"{self.baseline_value:.4f} {bracket(self.baseline_interval)}"
        head = f"{self.method} vs {self.baseline} on {self.metric.upper()}: {ours} vs {theirs}"
        if self.outcome == "beats":
            return f"{head}. {self.method} beats {self.baseline} (the intervals do not overlap)."
        if self.outcome == "does not beat":
            return (
                f"{head}. {self.method} does not beat {self.baseline}: "
                f"{self.baseline} is better and the intervals do not overlap."
            )
        if math.isnan(self.value) or math.isnan(self.interval[0]):
            return f"{head}. Not distinguishable: there are no predictions to compare."
        if self.value == self.baseline_value:
            side = "the point estimates are equal"
        else:
            higher = "higher" if self.value > self.baseline_value else "lower"
            side = f"{self.method}'s point estimate is {higher}"
        return f"{head}. Not distinguishable: the {LEVEL:.0%} intervals overlap ({side})."

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "baseline": self.baseline,
            "metric": self.metric,
            "outcome": self.outcome,
            "value": self.value,
            "ci": list(self.interval),
            "baseline_value": self.baseline_value,
            "baseline_ci": list(self.baseline_interval),
            "difference": self.difference[0],
            "difference_ci": list(self.difference[1:]),
            "sentence": self.sentence(),
        }


def verdicts(boot: Bootstrap, metric: str, method: str = REFERENCE) -> list[Verdict]:
    """One verdict per other method: beats / does not beat when the intervals are apart,
    not distinguishable when they overlap (or cannot be computed)."""
    if method not in boot.methods:
        return []
    out = []
    for baseline in boot.methods:
        if baseline == method:
            continue
        value, base = boot.estimate(method, metric), boot.estimate(baseline, metric)
        ours, theirs = boot.interval(method, metric), boot.interval(baseline, metric)
        apart = ours[0] > theirs[1] or theirs[0] > ours[1]  # False when any bound is NaN
        outcome: Outcome = "not distinguishable"
        if apart:
            outcome = "beats" if value > base else "does not beat"
        diff = boot.difference(method, baseline, metric)
        out.append(Verdict(method, baseline, metric, outcome, value, ours, base, theirs, diff))
    return out


# --- slices ----------------------------------------------------------------------------------
def hr_by_k(result: EvalResult, depth: int) -> dict[str, list[float]]:
    """HR@k for k = 1..depth per method (share of targets ranked within the first k)."""
    n = max(1, result.n_predictions)
    out = {}
    for j, method in enumerate(result.methods):
        rank = result.ranks[:, j]
        found = rank[(rank >= 0) & (rank < depth)]
        out[method] = (np.cumsum(np.bincount(found, minlength=depth)[:depth]) / n).tolist()
    return out


def by_history(result: EvalResult, k: int) -> list[dict[str, Any]]:
    """HR@k per method for predictions grouped by how many events the user had before them;
    empty buckets are left out."""
    rows = []
    for low, high in HISTORY_BUCKETS:
        mask = result.seen >= low
        if high is not None:
            mask &= result.seen <= high
        n = int(mask.sum())
        if n == 0:
            continue
        picked = result.ranks[mask]
        hits = ((picked >= 0) & (picked < k)).mean(axis=0)
        label = f"{low}-{high}" if high is not None else f"{low}+"
        rows.append(
            {
                "bucket": label,
                "n": n,
                f"hr@{k}": {m: float(hits[j]) for j, m in enumerate(result.methods)},
            }
        )
    return rows


def bracket(interval: tuple[float, float]) -> str:
    """An interval as the report prints it: ``[low, high]`` to four places, or ``[n/a]``."""
    low, high = interval
    if math.isnan(low) or math.isnan(high):
        return "[n/a]"
    return f"[{low:.4f}, {high:.4f}]"
