"""A small shop where co-visitation decides: whoever views ``lead-i`` views ``pair-i`` next.

``lead-i`` and ``pair-i`` are in different categories and brands, so only the item sequence
links them; every shopper views one lead, then its pair, then (sometimes) something random.
A model trained with ``zmot train --hybrid`` on it has hybrid tables whose ranker weighs
co-visitation positively: a profile that viewed ``lead-3`` should be offered ``pair-3``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.support.processes import run_zmot

PAIRS = 8
START = 1_780_000_000.0


def title(item_id: str) -> str:
    kind, i = item_id.split("-")
    return f"{'Lead' if kind == 'lead' else 'Pair'} gadget {i}"


def write_shop(directory: Path, *, users: int = 400, seed: int = 3) -> tuple[Path, Path]:
    """(events.jsonl, catalog.jsonl) of the shop in ``directory``."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    items = [f"{kind}-{i}" for i in range(PAIRS) for kind in ("lead", "pair")]
    catalog = directory / "catalog.jsonl"
    with catalog.open("w", encoding="utf-8") as out:
        for item in items:
            kind, i = item.split("-")
            row = {"item_id": item, "title": title(item), "category": f"{kind}.c{i}"}
            out.write(json.dumps({**row, "brand": f"{kind}-brand-{i}"}) + "\n")
    events = directory / "events.jsonl"
    with events.open("w", encoding="utf-8") as out:
        for u in range(users):
            ts = START + u * 600.0  # shoppers one after another over ~3 days
            i = rng.randrange(PAIRS)
            visits = [f"lead-{i}", f"pair-{i}"]
            if rng.random() < 0.5:
                visits.append(rng.choice(items))
            for step, item in enumerate(visits):
                row = {"user_id": f"u{u:04d}", "type": "page_view", "item_id": item}
                out.write(json.dumps({**row, "ts": (ts + 30.0 * step) * 1000}) + "\n")
    return events, catalog


def train_hybrid(directory: Path) -> tuple[Path, Path]:
    """(model directory, catalog.jsonl) of a ``zmot train --hybrid`` model on the shop."""
    events, catalog = write_shop(directory / "shop")
    model_dir = directory / "model"
    done = run_zmot(
        "train", "--events", str(events), "--catalog", str(catalog), "--out", str(model_dir),
        "--epochs", "5", "--hybrid",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "propensity check" in done.stderr, done.stderr
    return model_dir, catalog
