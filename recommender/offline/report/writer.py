"""Write the report: statistics into metrics.json, the plots as PNGs, then report.html."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.offline.report import page, plots
from recommender.offline.report.stats import (
    LEVEL,
    Bootstrap,
    bootstrap,
    by_history,
    hr_by_k,
    verdicts,
)

if TYPE_CHECKING:
    from recommender.core.model import Model
    from recommender.offline.evaluation import EvalResult


def write_report(
    out_dir: Path,
    result: EvalResult,
    summary: dict[str, Any],
    model: Model,
    *,
    items: str = "any",
    others: Mapping[str, EvalResult] | None = None,
    rounds: int = 300,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write metrics.json, the four plots and report.html into ``out_dir``; return the HTML's
    path. ``rounds`` bootstrap resamples of users give the 95% intervals. ``result`` is the
    evaluation over the ``items`` targets (``any`` or ``new``); ``others`` are other slices of
    it (e.g. ``{"new": result.only_new()}``), shown as further metric tables with their own
    intervals and written under ``by_items`` in metrics.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    main_k = min(result.ks)
    depth = max(result.depth, *result.ks)
    palette = plots.colours(result.methods)
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
    document["ci"] = _intervals(boot)
    extra = {
        name: (part, bootstrap(part, rounds=rounds, seed=seed))
        for name, part in (others or {}).items()
    }
    by_items = document["by_items"] = dict(document.get("by_items") or {})
    by_items[items] = {**by_items.get(items, {}), "ci": document["ci"]}
    for name, (part, part_boot) in extra.items():
        by_items[name] = {**by_items.get(name, part.summary()), "ci": _intervals(part_boot)}
    document["verdict"] = [v.to_json() for v in verdict]
    document["hr_by_k"] = curve_k
    document["by_history"] = history
    (out_dir / "metrics.json").write_text(
        json.dumps(_clean(document), indent=1, default=str, allow_nan=False) + "\n",
        encoding="utf-8",
    )

    metrics_png, hr_by_k_png, by_history_png, training_png = (out_dir / n for n in plots.PLOTS)
    plots.plot_metrics(metrics_png, boot, main_k, palette, n_users)
    plots.plot_hr_by_k(hr_by_k_png, curve_k, result.ks, palette)
    plots.plot_history(by_history_png, history, main_k, palette)
    plots.plot_training(training_png, model.info.get("curve"))

    text = page.render(
        result, summary, model, boot, verdict, history, main_k, depth, n_users, items, extra
    )
    path = out_dir / "report.html"
    path.write_text(text, encoding="utf-8")
    return path


def _intervals(boot: Bootstrap) -> dict[str, dict[str, list[float]]]:
    """Every method's interval of every metric, as metrics.json holds them."""
    return {
        m: {metric: list(boot.interval(m, metric)) for metric in boot.metrics} for m in boot.methods
    }


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
