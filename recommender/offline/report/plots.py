"""The report's four PNG plots, drawn with matplotlib on an explicit Agg canvas.

matplotlib is imported when the first figure is made, not with this module, so importing the
report stays cheap; no pyplot and no global backend switch, so it is safe in any process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.offline.report.stats import LEVEL, REFERENCE, Bootstrap

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOTS = ("metrics.png", "hr_by_k.png", "by_history.png", "training.png")
COLOURS = {
    "live": "#1f77b4",
    "frozen": "#9ecae1",
    "popular": "#7f7f7f",
    "popular_in_category": "#2ca02c",
    "recent": "#ff7f0e",
}
SPARE_COLOURS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def colours(methods: Sequence[str]) -> dict[str, str]:
    """One colour per method, the same in every plot (known methods keep theirs)."""
    spare = iter(SPARE_COLOURS * (1 + len(methods) // len(SPARE_COLOURS)))
    return {m: COLOURS.get(m) or next(spare) for m in methods}


def _figure(width: float = 9.0, height: float = 4.8) -> Figure:
    """A figure on an explicit Agg canvas: no pyplot state, safe in any process."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="png")


def plot_metrics(
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


def plot_hr_by_k(
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


def plot_history(path: Path, rows: list[dict[str, Any]], k: int, palette: dict[str, str]) -> None:
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


def plot_training(path: Path, curve: object) -> None:
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
