"""Defaults on data nobody tuned on: ``live`` against ``recent`` on variants of the shared samples.

The README's quality tables come from the three shared samples as they are; the defaults
were chosen looking at them. This script asks whether the result holds on data cut
differently from the same sources, none of which any choice was made on:

* ``taobao-rows-30`` / ``taobao-rows-50``: each row of the Taobao sample kept with probability
  0.3 / 0.5 (seeded): the same shoppers with sparser histories, most items seen once;
* ``taobao-users-a`` / ``taobao-users-b``: the Taobao shoppers split in two random halves;
* ``diginetica-sessions-a`` / ``-b``: the DIGINETICA sessions split in two random halves.

Each variant is imported (``zmot import``) and evaluated with defaults (``zmot evaluate``,
time split 0.8, HR@10 and MRR@10); the table gives ``live``, ``recent`` and the neighbourhood
baselines (HR@10 / MRR@10), ``live`` minus ``recent`` on HR@10 with the report's paired
95% bootstrap interval over users, and the placement caps ``max_seen`` whose ``live`` list
clears issue 9's bars on every target and on new items at once (``benchmarks/new_frontier.py``
on the evaluation's dump).

    python benchmarks/eval_variants.py [--out .zmot/eval-variants] [--seed 1]
        [--data DIR]   (default: $ZMOT_SHARED_DATA, else ../shared/data)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_api import zmot  # noqa: E402
from benchmarks.common import say  # noqa: E402
from benchmarks.new_frontier import frontier, load  # noqa: E402

TAOBAO = "taobao-userbehavior-10k.csv"
DIGINETICA = "diginetica-train-item-views-sample.csv"


def keep_rows(share: float) -> Callable[[list[str], random.Random], list[str]]:
    """Each row kept with probability ``share``."""

    def cut(rows: list[str], rng: random.Random) -> list[str]:
        return [row for row in rows if rng.random() < share]

    return cut


def half_of(column: int, sep: str, which: int) -> Callable[[list[str], random.Random], list[str]]:
    """The rows of one random half (``which``: 0 or 1) of the values of ``column``."""

    def cut(rows: list[str], rng: random.Random) -> list[str]:
        values = sorted({row.split(sep)[column] for row in rows})
        rng.shuffle(values)
        chosen = set(values[which::2])
        return [row for row in rows if row.split(sep)[column] in chosen]

    return cut


VARIANTS: tuple[
    tuple[str, str, str, bool, Callable[[list[str], random.Random], list[str]]], ...
] = (
    # name, source file, import format, has a header row, the cut
    ("taobao-rows-30", TAOBAO, "taobao", False, keep_rows(0.3)),
    ("taobao-rows-50", TAOBAO, "taobao", False, keep_rows(0.5)),
    ("taobao-users-a", TAOBAO, "taobao", False, half_of(0, ",", 0)),
    ("taobao-users-b", TAOBAO, "taobao", False, half_of(0, ",", 1)),
    ("diginetica-sessions-a", DIGINETICA, "diginetica", True, half_of(0, ";", 0)),
    ("diginetica-sessions-b", DIGINETICA, "diginetica", True, half_of(0, ";", 1)),
)


def write_variant(
    source: Path, header: bool, cut: Callable[..., list[str]], seed: int, out: Path
) -> int:
    """The variant's CSV at ``out`` (header kept); its number of data rows."""
    lines = source.read_text(encoding="utf-8").splitlines()
    head, rows = (lines[:1], lines[1:]) if header else ([], lines)
    kept = cut([row for row in rows if row.strip()], random.Random(seed))
    out.write_text("\n".join([*head, *kept]) + "\n", encoding="utf-8")
    return len(kept)


def figures(report: Path) -> dict[str, object]:
    """The table's figures of one report (``zmot evaluate --out``'s ``metrics.json``)."""
    data = json.loads(report.read_text(encoding="utf-8"))
    methods = data["by_items"]["any"]["methods"]
    paired = {
        v["metric"]: (v["difference"], v["difference_ci"])
        for v in data["verdict"]
        if v["method"] == "live" and v["baseline"] == "recent"
    }
    return {
        "n": data["n_predictions"],
        "users": data["n_users"],
        "methods": methods,
        "paired": paired,
    }


def table(rows: Sequence[tuple[str, int, dict[str, object]]]) -> list[str]:
    lines = [
        "| variant | rows | test users / predictions | live HR@10 / MRR@10 | recent | covisit "
        "| session_knn | live - recent, HR@10 [paired 95%] | max_seen clearing any and new |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, n_rows, f in rows:
        m = f["methods"]
        assert isinstance(m, dict)

        def pair(method: str, m: dict[str, dict[str, float]] = m) -> str:
            return f"{m[method]['hr@10']:.3f} / {m[method]['mrr@10']:.3f}"

        d, (low, high) = f["paired"]["hr@10"]  # type: ignore[index]
        lines.append(
            f"| {name} | {n_rows:,} | {f['users']:,} / {f['n']:,} | {pair('live')} | "
            f"{pair('recent')} | {pair('covisit')} | {pair('session_knn')} | "
            f"{d:+.3f} [{low:+.3f}, {high:+.3f}] | {f['clearing']} |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / ".zmot" / "eval-variants")
    shared = os.environ.get("ZMOT_SHARED_DATA")  # as eval_defaults.sh reads it
    p.add_argument(
        "--data", type=Path, default=Path(shared) if shared else ROOT.parent / "shared" / "data"
    )
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rows = []
    for name, source, fmt, header, cut in VARIANTS:
        work = (args.out / name).resolve()
        work.mkdir(parents=True, exist_ok=True)
        csv = work / "data.csv"
        n_rows = write_variant(args.data / source, header, cut, args.seed, csv)
        say(f"{name}: {n_rows:,} rows; importing and evaluating ...")
        zmot("import", str(csv), "--format", fmt, "--out", str(work), "--no-progress")
        zmot(
            "evaluate", "--events", str(work / "events.jsonl"),
            "--catalog", str(work / "catalog.jsonl"), "--split-ratio", "0.8", "--k", "10",
            "--out", str(work / "report"), "--dump-predictions", str(work / "predictions.jsonl"),
        )  # fmt: skip
        found = figures(work / "report" / "metrics.json")
        clearing = frontier(load(work / "predictions.jsonl")).clearing()
        found["clearing"] = ", ".join(map(str, clearing)) or "none"
        rows.append((name, n_rows, found))
    say("\n".join(table(rows)))


if __name__ == "__main__":
    main()
