"""Markdown tables of ``zmot evaluate --out`` reports: HR@10 and MRR@10 with 95% intervals,
on every target and on items new to the shopper (``python benchmarks/eval_table.py
DIR/report/metrics.json ...``; the data set is named by the folder above ``report``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

METHODS = (
    "live",
    "live_without_purchase_rule",
    "hybrid",
    "recent",
    "covisit",
    "session_knn",
    "popular_in_category",
    "frozen",
)


def cell(part: dict[str, Any], method: str, metric: str) -> str:
    value = part["methods"].get(method, {}).get(metric)
    if value is None:
        return "-"
    low, high = part.get("ci", {}).get(method, {}).get(metric, (None, None))
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
    return f"{value:.3f}{interval}"


def table(path: Path) -> str:
    report = json.loads(path.read_text(encoding="utf-8"))
    slices = report["by_items"]
    name = path.parent.parent.name
    shown = [s for s in ("any", "new", "discover") if s in slices]
    counts = ", ".join(f"{s}: {slices[s]['n_predictions']:,}" for s in ("any", "new"))
    head = " | ".join(f"{m} {s}" for s in shown for m in ("HR@10", "MRR@10"))
    lines = [
        f"**{name}** ({report['n_users']:,} test users; predictions {counts})",
        "",
        f"| method | {head} |",
        "|---|" + "---:|" * (2 * len(shown)),
    ]
    for method in METHODS:
        if method in slices["any"]["methods"]:
            cells = [cell(slices[s], method, m) for s in shown for m in ("hr@10", "mrr@10")]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python benchmarks/eval_table.py DIR/report/metrics.json ...")
    sys.stdout.write("\n\n".join(table(Path(p)) for p in argv) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
