"""benchmarks/new_frontier.py: the max_seen cut of a dumped list, and its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.new_frontier import capped, main


def test_capped_keeps_the_first_m_own_items_and_fills_with_new_ones() -> None:
    ranked = ["own1", "new1", "own2", "own3", "new2"]
    fresh = ["new1", "new2", "new3", "new4"]  # the same ranking without the own items
    assert capped(ranked, fresh, 5, 4) == ["own1", "new1", "own2", "own3"]
    assert capped(ranked, fresh, 1, 4) == ["own1", "new1", "new2", "new3"]
    assert capped(ranked, fresh, 0, 4) == fresh[:4]


def test_the_table_shows_the_cap_that_clears_both_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a and c return to an own item that every list ranks first ('recent' too); b goes to a
    # new item that the live list ranks 3rd, behind two own items
    empty = {"covisit": [], "session_knn": [], "popular_in_category": []}
    own = {"live": ["x", "y", "n"], "recent": ["x", "y"], **empty}
    rows = [
        {
            "user_id": u,
            "target": t,
            "new": t == "n",
            "methods": own,
            "discover": {"live": ["n", "m"]},
        }
        for u, t in (("a", "x"), ("b", "n"), ("c", "x"))
    ]
    dump = tmp_path / "preds.jsonl"
    dump.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([str(dump), "--k", "2", "--rounds", "50"]) == 0
    out = {line.split(" | ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert out["| live, max_seen 2 (default)"].endswith("| any only |")  # n is 3rd: missed
    assert out["| live, max_seen 1"].endswith("| yes |")  # x stays, n moves up: 3 of 3
    assert out["| live, max_seen 0 (exclude_seen)"].endswith("| new only |")  # 1 of 3 < 2 of 3
