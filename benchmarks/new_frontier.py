"""What one shared list can give new items without losing the others: the frontier of
``max_seen``, from a ``zmot evaluate --dump-predictions`` file.

A list that serves every target (``any``) spends slots on the shopper's own items, which are
hit most often; a list that serves items new to the shopper (``new``) wants those slots for
items they have not touched. The placement setting ``max_seen: m`` keeps at most ``m`` of
the shopper's own items (the best ``m`` by the ranker) and fills the other slots with the
best new ones. This script builds that list for every ``m`` from 0 (``exclude_seen``) to
``k`` (no cap, the default) from each prediction's ``live`` list and its ``discover`` list
(the same ranking without the user's own items), and prints HR@k and MRR@k on ``any`` and
``new`` targets with 95% bootstrap intervals over users, next to the baselines' lists as
they are. A row is marked where it clears both bars of issue 9 at once: on ``any`` at least
the best of ``recent``, ``covisit`` and ``session_knn``; on ``new`` above ``covisit``,
``session_knn`` and ``popular_in_category`` (HR and MRR each).

    zmot evaluate --events E --catalog C --split-ratio 0.8 --dump-predictions preds.jsonl
    python benchmarks/new_frontier.py preds.jsonl [--k 10] [--method live] [--rounds 1000]

It reads the dump only: the figures are the lists ``zmot evaluate`` ranked, re-cut.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ANY_BARS = ("recent", "covisit", "session_knn")
NEW_BARS = ("covisit", "session_knn", "popular_in_category")


@dataclass(frozen=True)
class Row:
    user: str
    target: str
    new: bool
    lists: dict[str, list[str]]
    discover: dict[str, list[str]]


def load(path: Path) -> list[Row]:
    rows = []
    with path.open() as fh:
        for number, line in enumerate(fh, 1):
            raw = json.loads(line)
            if "discover" not in raw:
                raise SystemExit(
                    f"{path}:{number}: no 'discover' lists (a dump of an older zmot evaluate?)"
                )
            rows.append(
                Row(raw["user_id"], raw["target"], raw["new"], raw["methods"], raw["discover"])
            )
    return rows


def capped(ranked: Sequence[str], fresh: Sequence[str], m: int, k: int) -> list[str]:
    """``ranked`` with the user's own items after the ``m``-th left out, cut to ``k``.

    ``fresh`` is the same ranking without the own items, so an item of ``ranked`` that is not
    among ``fresh`` is one of the user's own (when ``fresh`` is at least as deep as the part of
    ``ranked`` that counts); new items beyond ``ranked``'s end come from ``fresh``, in order.
    """
    new = set(fresh)
    out: list[str] = []
    own = 0
    for item in ranked:
        if item not in new:
            if own >= m:
                continue
            own += 1
        out.append(item)
        if len(out) == k:
            return out
    taken = set(out)
    out.extend(item for item in fresh if item not in taken)
    return out[:k]


def reciprocal_ranks(
    rows: Sequence[Row], lists: Sequence[Sequence[str]], k: int
) -> npt.NDArray[np.float64]:
    """1/rank of each row's target in its list (0 when not in the top ``k``)."""
    out = np.zeros(len(rows))
    for i, (row, listed) in enumerate(zip(rows, lists, strict=True)):
        top = list(listed[:k])
        if row.target in top:
            out[i] = 1.0 / (top.index(row.target) + 1)
    return out


@dataclass(frozen=True)
class Figure:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


class Bootstrap:
    """Means over rows with 95% intervals from resampling users (the same draws for every
    list, so the intervals of two lists are comparable)."""

    def __init__(self, users: Sequence[str], rounds: int, seed: int = 0) -> None:
        ids = {u: i for i, u in enumerate(dict.fromkeys(users))}
        self.user = np.array([ids[u] for u in users])
        rng = np.random.default_rng(seed)
        self.weights = np.stack(
            [
                np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
                for _ in range(rounds)
            ]
        )  # rounds x users: how often each user is drawn

    def mean(self, values: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> Figure:
        users = self.user[mask]
        sums = np.bincount(users, weights=values[mask], minlength=self.weights.shape[1])
        counts = np.bincount(users, minlength=self.weights.shape[1]).astype(float)
        drawn = (self.weights @ sums) / np.maximum(self.weights @ counts, 1.0)
        low, high = np.percentile(drawn, [2.5, 97.5])
        return Figure(float(values[mask].mean()) if mask.any() else 0.0, float(low), float(high))


CELLS = ("hr any", "mrr any", "hr new", "mrr new")
MARKS = {(True, True): "yes", (True, False): "any only", (False, True): "new only"}


@dataclass(frozen=True)
class Frontier:
    """The baselines' figures and the capped lists' (``caps[m]``), each with its mark."""

    baselines: dict[str, dict[str, Figure]]
    caps: dict[int, dict[str, Figure]]
    marks: dict[int, str]

    def clearing(self) -> list[int]:
        """The caps whose list clears both bars."""
        return [m for m, mark in self.marks.items() if mark == "yes"]


def frontier(
    rows: Sequence[Row], k: int = 10, method: str = "live", rounds: int = 1000
) -> Frontier:
    """Every cap's list of ``method`` measured against the bars (see the module docstring)."""
    new = np.array([r.new for r in rows])
    every = np.ones(len(rows), dtype=bool)
    boot = Bootstrap([r.user for r in rows], rounds)

    def figures(lists: Sequence[Sequence[str]]) -> dict[str, Figure]:
        rr = reciprocal_ranks(rows, lists, k)
        hit = (rr > 0).astype(float)
        masks = (every, every, new, new)
        return {
            c: boot.mean(hit if c.startswith("hr") else rr, m)
            for c, m in zip(CELLS, masks, strict=True)
        }

    baselines: dict[str, dict[str, Figure]] = {}
    for name in dict.fromkeys((*ANY_BARS, *NEW_BARS)):
        if name in rows[0].lists:
            baselines[name] = figures([r.lists[name] for r in rows])

    def bar(names: Sequence[str], cell: str) -> float:
        return max((baselines[b][cell].value for b in names if b in baselines), default=0.0)

    caps: dict[int, dict[str, Figure]] = {}
    marks: dict[int, str] = {}
    for m in range(k, -1, -1):
        fig = caps[m] = figures([capped(r.lists[method], r.discover[method], m, k) for r in rows])
        ok_any = all(fig[c].value >= bar(ANY_BARS, c) for c in CELLS[:2])
        ok_new = all(fig[c].value > bar(NEW_BARS, c) for c in CELLS[2:])
        marks[m] = MARKS.get((ok_any, ok_new), "no")
    return Frontier(baselines, caps, marks)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dump", type=Path, help="zmot evaluate --dump-predictions file")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--method", default="live", help="the method whose lists are capped")
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds")
    args = parser.parse_args(argv)
    rows = load(args.dump)
    if not rows:
        raise SystemExit(f"{args.dump}: no predictions")
    k = args.k
    found = frontier(rows, k, args.method, args.rounds)
    lines = [
        f"{args.dump}: {len(rows):,} predictions, {sum(r.new for r in rows):,} on new items, "
        f"{len({r.user for r in rows}):,} users; '{args.method}' capped at m own items",
        "",
        f"| list | HR@{k} any | MRR@{k} any | HR@{k} new | MRR@{k} new | clears both |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for name, fig in found.baselines.items():
        lines.append(f"| {name} | " + " | ".join(str(fig[c]) for c in CELLS) + " | |")
    for m, fig in found.caps.items():
        name = f"{args.method}, max_seen {m}" + (" (default)" if m == k else "")
        name += " (exclude_seen)" if m == 0 else ""
        row = " | ".join(str(fig[c]) for c in CELLS)
        lines.append(f"| {name} | {row} | {found.marks[m]} |")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
