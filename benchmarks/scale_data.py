"""Scaled-up clickstreams in the shapes of the shared samples, for `zmot import/train/evaluate`
at scale (BENCHMARKS.md, "Offline at scale"). Nothing is downloaded: the Taobao sample's
behaviour mix and per-user shape (sessions of repeated views inside a category, a few carts
and purchases) are resampled into a much larger shop, written in the Taobao CSV format so that
`zmot import --format taobao` reads it:

- a catalog of ``--items`` items in ``--categories`` categories whose sizes follow a Zipf law
  (one huge category, a long tail of one-item ones); items are drawn from a Zipf popularity,
  so most of the catalog is cold (seen a few times or never);
- history lengths from a mixture: one-event anonymous visitors, short sessions, lognormal
  regulars and a few "whales" with thousands of events;
- repeats of the user's own items, browsing inside the current category, jumps;
- a share of duplicated rows and of rows written out of time order (as in real logs).

    python benchmarks/scale_data.py --events 1000000 --items 300000 --out /tmp/scale/taobao1m.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

SINCE = datetime(2017, 11, 25, 0, tzinfo=UTC).timestamp()  # inside the importer's window
UNTIL = datetime(2017, 12, 3, 12, tzinfo=UTC).timestamp()
BEHAVIOURS = np.array(["pv", "cart", "fav", "buy"])
BEHAVIOUR_P = np.array([0.895, 0.055, 0.03, 0.02])  # the Taobao sample's mix, about


def history_lengths(rng: np.random.Generator, events: int) -> np.ndarray:
    """Per-user event counts summing to about ``events``: 35% one-event visitors, 30% short
    (2-8), 34.9% lognormal regulars (median ~25), 0.1% whales (1,000-20,000)."""
    out: list[np.ndarray] = []
    total = 0
    while total < events:
        n = 10_000
        kind = rng.choice(4, size=n, p=[0.35, 0.30, 0.349, 0.001])
        length = np.ones(n, dtype=np.int64)
        length[kind == 1] = rng.integers(2, 9, size=int((kind == 1).sum()))
        length[kind == 2] = np.clip(
            rng.lognormal(np.log(25), 1.0, size=int((kind == 2).sum())), 2, 2000
        ).astype(np.int64)
        length[kind == 3] = rng.integers(1000, 20_001, size=int((kind == 3).sum()))
        out.append(length)
        total += int(length.sum())
    lengths = np.concatenate(out)
    total_so_far = np.cumsum(lengths)
    cut = int(np.searchsorted(total_so_far, events)) + 1
    lengths = lengths[:cut]
    lengths[-1] -= int(total_so_far[cut - 1]) - events  # the last user ends at ``events``
    return lengths


def generate(events: int, items: int, categories: int, seed: int, out: Path) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    # category of each item: Zipf sizes (category 0 is huge), shuffled ids
    cat_p = 1.0 / np.arange(1, categories + 1) ** 1.1
    cat_p /= cat_p.sum()
    item_cat = rng.choice(categories, size=items, p=cat_p)
    order = np.argsort(item_cat, kind="stable")
    cat_start = np.searchsorted(item_cat[order], np.arange(categories + 1))
    # item popularity: Zipf over a random permutation of the catalog
    pop = 1.0 / np.arange(1, items + 1) ** 0.9
    pop /= pop.sum()
    perm = rng.permutation(items)
    pop_cdf = np.cumsum(pop)
    lengths = history_lengths(rng, events)
    n = int(lengths.sum())
    # random draws for every event at once, then one pass per user
    u = rng.random((n, 3))
    global_pick = perm[np.minimum(np.searchsorted(pop_cdf, rng.random(n)), items - 1)]
    behaviour = rng.choice(len(BEHAVIOURS), size=n, p=BEHAVIOUR_P)
    gaps = rng.exponential(90.0, size=n)  # seconds between a user's events in a session
    session_gap = rng.exponential(86_400.0, size=n)
    starts = rng.uniform(SINCE, UNTIL, size=len(lengths))
    user_ids = rng.permutation(len(lengths) * 4)[: len(lengths)] + 1
    item_col = np.empty(n, dtype=np.int64)
    ts_col = np.empty(n, dtype=np.int64)
    user_col = np.repeat(user_ids, lengths)
    pos = 0
    for user, length in enumerate(lengths.tolist()):
        t = starts[user]
        own: list[int] = []
        current = int(global_pick[pos])
        for k in range(pos, pos + length):
            r_repeat, r_cat, r_session = u[k]
            if own and r_repeat < 0.35:
                current = own[int(r_cat * len(own))]
            elif own and r_cat < 0.6:  # browse the current category
                c = item_cat[current]
                lo, hi = cat_start[c], cat_start[c + 1]
                current = int(order[lo + int(r_repeat * (hi - lo)) % (hi - lo)])
            else:
                current = int(global_pick[k])
            own.append(current)
            t += session_gap[k] if r_session < 0.05 else gaps[k]
            if t >= UNTIL:
                t = starts[user] + (t - starts[user]) % (UNTIL - starts[user])
            item_col[k] = current
            ts_col[k] = int(t)
        pos += length
    rows = np.arange(n)
    duplicated = rows[rng.random(n) < 0.01]
    rows = np.concatenate([rows, duplicated])
    rows.sort(kind="stable")
    # 2% of the rows move to a random place (out of time order, also inside one user)
    moved = np.flatnonzero(rng.random(len(rows)) < 0.02)
    rows[moved] = rows[rng.permutation(moved)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        block = 200_000
        for lo in range(0, len(rows), block):
            r = rows[lo : lo + block]
            lines = [
                f"{a},{b},{c},{d},{e}\n"
                for a, b, c, d, e in zip(
                    user_col[r].tolist(),
                    (item_col[r] + 1).tolist(),
                    (item_cat[item_col[r]] + 1).tolist(),
                    BEHAVIOURS[behaviour[r]].tolist(),
                    ts_col[r].tolist(),
                    strict=True,
                )
            ]
            f.writelines(lines)
    return {
        "rows": len(rows),
        "users": len(lengths),
        "one_event_users": int((lengths == 1).sum()),
        "max_history": int(lengths.max()),
        "distinct_items": len(np.unique(item_col)),
        "catalog": items,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--categories", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    stats = generate(args.events, args.items, args.categories, args.seed, args.out)
    took = time.perf_counter() - started
    summary = ", ".join(f"{k} {v:,}" for k, v in stats.items())
    sys.stdout.write(f"{args.out}: {summary} ({took:.0f} s)\n")


if __name__ == "__main__":
    main()
