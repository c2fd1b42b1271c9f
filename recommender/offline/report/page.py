"""report.html: the page template (``report.html`` beside this module) filled in.

The template holds the page's fixed text and style; this module renders the parts that
depend on the evaluation (tables, verdict, captions) and escapes everything it inserts.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from recommender.offline.report.plots import PLOTS, colours
from recommender.offline.report.stats import LEVEL, REFERENCE, Bootstrap, Verdict, bracket

if TYPE_CHECKING:
    from recommender.core.model import Model
    from recommender.offline.evaluation import EvalResult

TEMPLATE = Path(__file__).with_name("report.html")
"""The page with ``$name`` slots (:class:`string.Template`), shipped as package data."""

DESCRIPTIONS = {
    "live": "the model scoring the shopper's live profile, updated with every event: "
    "this is what zmot serves",
    "frozen": "the same model on the profile as it stood at the end of training "
    "(what a nightly batch job would serve)",
    "popular": "the items most often chosen in training, the same list for everyone",
    "popular_in_category": "the most popular items of the categories the shopper looked at "
    "most recently, then popular items",
    "recent": "the shopper's own items so far, newest first",
    "live_without_purchase_rule": "the live model with recently bought items allowed back "
    "(what the purchase rule costs)",
    "covisit": "items seen shortly before or after the shopper's newest items by the same "
    "shoppers in training (item-to-item co-visitation)",
    "session_knn": "items of the past sessions most similar to the shopper's latest session "
    "(V-SkNN)",
}
SLICES = {
    "any": "every target",
    "new": "targets new to the shopper (no earlier event on the item; recent cannot hit)",
    "discover": "the same new targets, in each list without the shopper's own items (what a "
    "'new for you' slot shows)",
}


@lru_cache(maxsize=1)
def _template() -> Template:
    return Template(TEMPLATE.read_text(encoding="utf-8"))


def render(
    result: EvalResult,
    summary: dict[str, Any],
    model: Model,
    boot: Bootstrap,
    verdict: list[Verdict],
    history: list[dict[str, Any]],
    main_k: int,
    depth: int,
    n_users: int,
    items: str = "any",
    others: Mapping[str, tuple[EvalResult, Bootstrap]] | None = None,
) -> str:
    """The report page: everything inline except the PNGs next to it. Verdict, plots and the
    history table are over the ``items`` targets; ``others`` add a metrics table each."""
    e = html.escape
    palette = colours(result.methods)
    recent_boost = ""
    if "recent_boost" in summary:
        recent_boost = f"<li>recent_boost = {e(str(summary['recent_boost']))}</li>\n"
    return _template().substitute(
        version=e(model.version),
        written=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        model=_model_section(model),
        n_predictions=result.n_predictions,
        n_users=n_users,
        ks=", ".join(str(k) for k in result.ks),
        main_k=main_k,
        depth=depth,
        n_items=result.n_items,
        recent_boost=recent_boost,
        level=f"{LEVEL:.0%}",
        rounds=boot.values.shape[0],
        verdict=_verdict_section(verdict, main_k),
        items=e(SLICES.get(items, items)),
        metrics=_metrics_table(result, boot, palette),
        others="".join(
            f"<h3>Targets: {e(SLICES.get(name, name))} ({part.n_predictions} predictions)</h3>"
            + _metrics_table(part, part_boot, palette)
            for name, (part, part_boot) in (others or {}).items()
        ),
        figures=_figures(main_k, depth),
        history=_history_table(result, history, main_k, palette),
        methods="".join(
            f"<li>{_name(m, palette)}: {e(DESCRIPTIONS.get(m, 'a method of this evaluation'))}."
            "</li>\n"
            for m in result.methods
        ),
    )


def _verdict_section(verdict: list[Verdict], main_k: int) -> str:
    """The verdicts as a list, who is not beaten, and the paired differences."""
    e = html.escape
    if not verdict:
        return f"<p>No '{REFERENCE}' method in this evaluation: nothing to compare.</p>"
    parts = ["<ul>"]
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
            f"<td>{e(bracket((low, high)))}</td></tr>"
        )
    parts.append("</table>")
    return "\n".join(parts)


def _figures(main_k: int, depth: int) -> str:
    """The plots with their captions."""
    e = html.escape
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
    return "\n".join(
        f'<figure><img src="{name}" alt="{e(captions[name])}">'
        f"<figcaption>{e(captions[name])}</figcaption></figure>"
        for name in PLOTS
    )


def _history_table(
    result: EvalResult, history: list[dict[str, Any]], main_k: int, palette: dict[str, str]
) -> str:
    """HR@k per method and history bucket."""
    if not history:
        return "<p>No predictions.</p>"
    parts = ['<div class="scroll"><table><tr><th>events before</th><th>predictions</th>']
    parts.extend(f"<th>{_name(m, palette)}</th>" for m in result.methods)
    parts.append("</tr>")
    for row in history:
        cells = "".join(f"<td>{row[f'hr@{main_k}'][m]:.4f}</td>" for m in result.methods)
        parts.append(f"<tr><td>{html.escape(row['bucket'])}</td><td>{row['n']}</td>{cells}</tr>")
    parts.append("</table></div>")
    return "\n".join(parts)


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
                ci = f' <span class="ci">{bracket(boot.interval(method, column))}</span>'
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
