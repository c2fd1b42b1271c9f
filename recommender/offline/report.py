"""The `zmot evaluate --out DIR` report: metrics.json, four PNG plots and report.html.

Confidence intervals come from a bootstrap over users (a user's predictions are resampled
together, since they are not independent). It is vectorised: every method's hits, reciprocal
ranks and NDCG gains are summed per user once, and a resample of users is then a weighted sum
of those rows, so hundreds of rounds over 100k predictions take well under a second. Every
method is measured on the same resamples, which also gives paired intervals of differences.

matplotlib is imported inside :func:`write_report` only, so importing this module stays cheap,
and the figures are drawn on an explicit Agg canvas (no pyplot, no global backend switch).
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from recommender.core.model import Model
    from recommender.offline.evaluation import EvalResult

F64 = npt.NDArray[np.float64]
Outcome = Literal["beats", "does not beat", "not distinguishable"]

LEVEL = 0.95
REFERENCE = "live"
PLOTS = ("metrics.png", "hr_by_k.png", "by_history.png", "training.png")
HISTORY_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 2),
    (3, 5),
    (6, 10),
    (11, 20),
    (21, 50),
    (51, None),
)
COLOURS = {
    "live": "#1f77b4",
    "frozen": "#9ecae1",
    "popular": "#7f7f7f",
    "popular_in_category": "#2ca02c",
    "recent": "#ff7f0e",
}
SPARE_COLOURS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
DESCRIPTIONS = {
    "live": "the model scoring the shopper's live profile, updated with every event: "
    "this is what zmot serves",
    "frozen": "the same model on the profile as it stood at the end of training "
    "(what a nightly batch job would serve)",
    "popular": "the items most often chosen in training, the same list for everyone",
    "popular_in_category": "the most popular items of the categories the shopper looked at "
    "most recently, then popular items",
    "recent": "the shopper's own items so far, newest first",
}


def colours(methods: Sequence[str]) -> dict[str, str]:
    """One colour per method, the same in every plot (known methods keep theirs)."""
    spare = iter(SPARE_COLOURS * (1 + len(methods) // len(SPARE_COLOURS)))
    return {m: COLOURS.get(m) or next(spare) for m in methods}


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

    Users are drawn exactly as the reference loop in tests/recommender/test_report.py draws
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
        ours = f"{self.value:.4f} {_bracket(self.interval)}"
        theirs = f"{self.baseline_value:.4f} {_bracket(self.baseline_interval)}"
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


# --- the report ------------------------------------------------------------------------------
def write_report(
    out_dir: Path,
    result: EvalResult,
    summary: dict[str, Any],
    model: Model,
    *,
    rounds: int = 300,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write metrics.json, the four plots and report.html into ``out_dir``; return the HTML's
    path. ``rounds`` bootstrap resamples of users give the 95% intervals."""
    out_dir.mkdir(parents=True, exist_ok=True)
    main_k = min(result.ks)
    depth = max(result.depth, *result.ks)
    palette = colours(result.methods)
    boot = bootstrap(result, rounds=rounds, seed=seed, progress=progress)
    main_metric = f"hr@{main_k}"
    verdict = verdicts(boot, main_metric)
    curve_k = hr_by_k(result, depth)
    history = by_history(result, main_k)
    n_users = len(set(result.users.tolist()))

    document = dict(summary)
    document["main_k"] = main_k
    document["depth"] = depth
    document["confidence"] = {"level": LEVEL, "rounds": rounds, "seed": seed, "over": "users"}
    document["ci"] = {
        m: {metric: list(boot.interval(m, metric)) for metric in boot.metrics} for m in boot.methods
    }
    document["verdict"] = [v.to_json() for v in verdict]
    document["hr_by_k"] = curve_k
    document["by_history"] = history
    (out_dir / "metrics.json").write_text(
        json.dumps(_clean(document), indent=1, default=str, allow_nan=False) + "\n",
        encoding="utf-8",
    )

    _plot_metrics(out_dir / "metrics.png", boot, main_k, palette, n_users)
    _plot_hr_by_k(out_dir / "hr_by_k.png", curve_k, result.ks, palette)
    _plot_history(out_dir / "by_history.png", history, main_k, palette)
    _plot_training(out_dir / "training.png", model.info.get("curve"))

    page = _html(result, summary, model, boot, verdict, history, main_k, depth, n_users)
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _bracket(interval: tuple[float, float]) -> str:
    low, high = interval
    if math.isnan(low) or math.isnan(high):
        return "[n/a]"
    return f"[{low:.4f}, {high:.4f}]"


# --- plots -----------------------------------------------------------------------------------
def _figure(width: float = 9.0, height: float = 4.8) -> Figure:
    """A figure on an explicit Agg canvas: no pyplot state, safe in any process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png")


def _plot_metrics(
    path: Path, boot: Bootstrap, k: int, palette: dict[str, str], n_users: int
) -> None:
    """Grouped bars of HR/MRR/NDCG@k per method with bootstrap intervals as error bars."""
    fig = _figure()
    ax = fig.add_subplot()
    names = [f"hr@{k}", f"mrr@{k}", f"ndcg@{k}"]
    x = np.arange(len(names))
    width = 0.8 / max(1, len(boot.methods))
    for j, method in enumerate(boot.methods):
        values = np.array([boot.estimate(method, n) for n in names])
        bounds = np.array([boot.interval(method, n) for n in names]).reshape(-1, 2)
        err = np.nan_to_num(np.abs(np.stack([values - bounds[:, 0], bounds[:, 1] - values])))
        offset = (j - (len(boot.methods) - 1) / 2) * width
        bars = ax.bar(
            x + offset,
            values,
            width,
            yerr=err,
            capsize=3,
            color=palette[method],
            label=method,
            edgecolor="black",
            linewidth=0.4,
        )
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(x, [n.upper() for n in names])
    ax.set_ylabel("score (mean over predictions)")
    ax.set_title(f"Replay metrics at k={k}, {LEVEL:.0%} bootstrap intervals over {n_users} users")
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(title="method", loc="outside right upper", fontsize=8)
    _save(fig, path)


def _plot_hr_by_k(
    path: Path, curves: dict[str, list[float]], ks: Sequence[int], palette: dict[str, str]
) -> None:
    """HR@k as k grows, one line per method; the asked k are marked."""
    fig = _figure()
    ax = fig.add_subplot()
    for method, values in curves.items():
        ax.plot(
            range(1, len(values) + 1),
            values,
            color=palette[method],
            label=method,
            linewidth=2.2 if method == REFERENCE else 1.5,
        )
    for k in ks:
        ax.axvline(k, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("k (length of the offer list)")
    ax.set_ylabel("HR@k (share of next items within the top k)")
    ax.set_title("Hit rate as the list grows (dotted: the k asked for)")
    ax.set_xlim(left=1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.legend(title="method", loc="outside right upper", fontsize=8)
    _save(fig, path)


def _plot_history(path: Path, rows: list[dict[str, Any]], k: int, palette: dict[str, str]) -> None:
    """HR@k per method by the number of events the user had before the prediction."""
    fig = _figure()
    ax = fig.add_subplot()
    if not rows:
        ax.set_title(f"HR@{k} by length of the user's history")
        _placeholder(ax, "No predictions to split by history.")
        _save(fig, path)
        return
    methods = list(rows[0][f"hr@{k}"])
    x = np.arange(len(rows))
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        offset = (j - (len(methods) - 1) / 2) * width
        values = [row[f"hr@{k}"][method] for row in rows]
        ax.bar(x + offset, values, width, color=palette[method], label=method)
    ax.set_xticks(x, [f"{row['bucket']}\nn={row['n']}" for row in rows])
    ax.set_xlabel("events of the user before the prediction (n = predictions in the bucket)")
    ax.set_ylabel(f"HR@{k}")
    ax.set_title(f"HR@{k} by length of the user's history")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(title="method", loc="outside right upper", fontsize=8)
    _save(fig, path)


def _plot_training(path: Path, curve: object) -> None:
    """Training HR@10 per epoch with elapsed seconds on a second axis, or a placeholder."""
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    points = [p for p in curve if isinstance(p, dict)] if isinstance(curve, list) else []
    epochs = [float(p.get("epoch", i + 1)) for i, p in enumerate(points)]
    hr = [float(p.get("train_hr@10", math.nan)) for p in points]
    if not points or all(math.isnan(v) for v in hr):
        ax.set_title("Training curve")
        _placeholder(ax, "This model carries no training curve\n(trained by an older zmot?).")
        _save(fig, path)
        return
    ax.plot(epochs, hr, marker="o", markersize=3, color=COLOURS["live"], label="train HR@10")
    ax.set_xlabel("epoch")
    ax.set_ylabel("HR@10 on a sample of training contexts")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    raw = [p.get("seconds") for p in points]
    seconds = [float(s) for s in raw if isinstance(s, int | float)]
    title = "Training curve"
    if len(seconds) == len(points):
        right = ax.twinx()
        right.plot(epochs, seconds, color="grey", linestyle="--", label="elapsed seconds")
        right.set_ylabel("elapsed seconds")
        right.set_ylim(bottom=0)
        more_handles, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
        title += f": {len(points)} epochs in {seconds[-1]:.1f} s"
    ax.set_title(title)
    ax.legend(handles, labels, loc="lower right", fontsize=8)
    _save(fig, path)


def _placeholder(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, transform=ax.transAxes)
    ax.set_axis_off()


# --- HTML ------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
td.best{font-weight:bold}.ci{color:#666;font-size:.82em}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.35em;border:1px solid #555}
li.beats{color:#17612a}li.does-not-beat{color:#a31515}li.not-distinguishable{color:#7a5c00}
figure{margin:1.2rem 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9rem}.muted{color:#777}
.scroll{overflow-x:auto}
"""


def _html(
    result: EvalResult,
    summary: dict[str, Any],
    model: Model,
    boot: Bootstrap,
    verdict: list[Verdict],
    history: list[dict[str, Any]],
    main_k: int,
    depth: int,
    n_users: int,
) -> str:
    """The report page: everything inline except the PNGs next to it."""
    e = html.escape
    palette = colours(result.methods)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>zmot evaluation: {e(model.version)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>zmot replay evaluation</h1>",
        f'<p class="muted">Model <code>{e(model.version)}</code>, report written '
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.</p>",
    ]

    parts.append("<h2>Model</h2>")
    parts.append(_model_section(model))

    parts.append("<h2>What was measured</h2><ul>")
    parts.append(
        f"<li>{result.n_predictions} predictions for {n_users} users "
        f"(one before every target event of a test user)</li>"
    )
    parts.append(
        f"<li>cut-offs k = {', '.join(str(k) for k in result.ks)} (main k = {main_k}); "
        f"lists ranked {depth} deep; {result.n_items} items in the catalogue</li>"
    )
    if "recent_boost" in summary:
        parts.append(f"<li>recent_boost = {e(str(summary['recent_boost']))}</li>")
    parts.append(
        f"<li>{LEVEL:.0%} confidence intervals: bootstrap over users, "
        f"{boot.values.shape[0]} rounds</li></ul>"
    )

    parts.append(f"<h2>Verdict on HR@{main_k}</h2>")
    if verdict:
        parts.append("<ul>")
        for v in verdict:
            parts.append(f'<li class="{v.outcome.replace(" ", "-")}">{e(v.sentence())}</li>')
        parts.append("</ul>")
        losses = [v.baseline for v in verdict if v.outcome != "beats"]
        if losses:
            parts.append(
                f"<p><strong>{REFERENCE} does not demonstrably beat: "
                f"{e(', '.join(losses))}.</strong></p>"
            )
        else:
            parts.append(f"<p><strong>{REFERENCE} beats every baseline.</strong></p>")
        parts.append(
            '<p class="muted">Non-overlapping intervals are a conservative test. The paired '
            "differences (same resampled users for both methods) are sharper:</p>"
        )
        parts.append(
            f"<table><tr><th>baseline</th><th>{REFERENCE} − baseline, HR@{main_k}</th>"
            f"<th>{LEVEL:.0%} paired interval</th></tr>"
        )
        for v in verdict:
            point, low, high = v.difference
            parts.append(
                f"<tr><td>{e(v.baseline)}</td><td>{point:+.4f}</td>"
                f"<td>{e(_bracket((low, high)))}</td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append(f"<p>No '{REFERENCE}' method in this evaluation: nothing to compare.</p>")

    parts.append("<h2>Metrics</h2>")
    parts.append(_metrics_table(result, boot, palette))

    captions = {
        "metrics.png": f"HR, MRR and NDCG at k={main_k} per method; the error bars are "
        f"{LEVEL:.0%} bootstrap intervals over users.",
        "hr_by_k.png": f"HR@k for k = 1..{depth}: how often the next item is within the "
        "first k offers, so longer lists can be compared.",
        "by_history.png": f"HR@{main_k} by how many events the shopper had before the "
        "prediction: does the live profile help more as the history grows?",
        "training.png": "Training HR@10 on a sample of training contexts after each epoch "
        "(a flat curve means more epochs would not help).",
    }
    parts.append("<h2>Plots</h2>")
    for name in PLOTS:
        parts.append(
            f'<figure><img src="{name}" alt="{e(captions[name])}">'
            f"<figcaption>{e(captions[name])}</figcaption></figure>"
        )

    parts.append(f"<h2>HR@{main_k} by history length</h2>")
    if history:
        parts.append('<div class="scroll"><table><tr><th>events before</th><th>predictions</th>')
        parts.extend(f"<th>{_name(m, palette)}</th>" for m in result.methods)
        parts.append("</tr>")
        for row in history:
            cells = "".join(f"<td>{row[f'hr@{main_k}'][m]:.4f}</td>" for m in result.methods)
            parts.append(f"<tr><td>{e(row['bucket'])}</td><td>{row['n']}</td>{cells}</tr>")
        parts.append("</table></div>")
    else:
        parts.append("<p>No predictions.</p>")

    parts.append("<h2>How to read this</h2><ul>")
    for method in result.methods:
        text = DESCRIPTIONS.get(method, "a method of this evaluation")
        parts.append(f"<li>{_name(method, palette)}: {e(text)}.</li>")
    parts.append(
        "</ul><p>Every test event of a shopper is a question: given everything before it, "
        "which items would each method have offered? <b>HR@k</b> is the share of events whose "
        "item was among the first k offers, <b>MRR@k</b> the mean of 1/rank (0 when missed), "
        "<b>NDCG@k</b> the mean of 1/log2(rank+1), and <b>coverage@k</b> the share of the "
        "catalogue offered at least once. The intervals in brackets are "
        f"{LEVEL:.0%} bootstrap intervals: whole users are resampled with replacement, because "
        "one shopper's predictions are not independent of each other. When two methods' "
        "intervals overlap the data do not show which is better.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _name(method: str, palette: dict[str, str]) -> str:
    colour = html.escape(palette.get(method, "#ccc"))
    return f'<span class="swatch" style="background:{colour}"></span>{html.escape(method)}'


def _metrics_table(result: EvalResult, boot: Bootstrap, palette: dict[str, str]) -> str:
    """Every metric per method per k with its interval; the best value of a column in bold."""
    full = {m: result.method_metrics(m) for m in result.methods}
    columns = [f"{name}@{k}" for k in result.ks for name in ("hr", "mrr", "ndcg")]
    columns += [f"coverage@{k}" for k in result.ks]
    best = {
        c: max((full[m].get(c, math.nan) for m in result.methods), default=math.nan)
        for c in columns
    }
    rows = ['<div class="scroll"><table><tr><th>method</th>']
    rows.extend(f"<th>{html.escape(c.upper())}</th>" for c in columns)
    rows.append("</tr>")
    for method in result.methods:
        rows.append(f"<tr><td>{_name(method, palette)}</td>")
        for column in columns:
            value = full[method].get(column, math.nan)
            cls = ' class="best"' if value == best[column] and value > 0 else ""
            ci = ""
            if column in boot.metrics:
                ci = f' <span class="ci">{_bracket(boot.interval(method, column))}</span>'
            rows.append(f"<td{cls}>{value:.4f}{ci}</td>")
        rows.append("</tr>")
    rows.append("</table></div>")
    return "".join(rows)


def _model_section(model: Model) -> str:
    """Training configuration and counts from the model's info, when it has them."""
    e = html.escape
    info = model.info or {}
    out = [f"<p>Version <code>{e(model.version)}</code>, recent_boost {model.recent_boost}.</p>"]
    config = info.get("train_config")
    if isinstance(config, dict) and config:
        out.append("<table><tr><th>training setting</th><th>value</th></tr>")
        out.extend(f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in config.items())
        out.append("</table>")
    else:
        out.append("<p>The model carries no training configuration.</p>")
    counts = {k: v for k, v in info.items() if k not in ("train_config", "curve")}
    if counts:
        out.append("<table><tr><th>training fact</th><th>value</th></tr>")
        out.extend(f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in counts.items())
        out.append("</table>")
    return "".join(out)
