"""`zmot import` then `zmot evaluate --json` on the real Taobao sample, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tests.support.processes import run_zmot

TAOBAO = SHARED_DATA / "taobao-userbehavior-10k.csv"
METHODS = {"live", "frozen", "popular", "popular_in_category", "recent"}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("taobao")
    done = run_zmot("import", "--format", "taobao", str(TAOBAO), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    return out


def test_evaluate_json_prints_one_document_with_every_metric(
    imported: Path, tmp_path: Path
) -> None:
    dump = tmp_path / "predictions.jsonl"
    done = run_zmot(
        "evaluate",
        "--events", str(imported / "events.jsonl"),
        "--split-ratio", "0.8",
        "--catalog", str(imported / "catalog.jsonl"),
        "--k", "10,20",
        "--epochs", "5",
        "--json",
        "--dump-predictions", str(dump),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # exactly one JSON document: logs went to stderr
    assert document["n_predictions"] > 1000
    assert METHODS <= set(document["methods"])
    for name in METHODS:
        values = document["methods"][name]
        for k in (10, 20):
            for metric in ("hr", "mrr", "ndcg"):
                assert 0.0 <= values[f"{metric}@{k}"] <= 1.0
        assert 0.0 <= values["coverage"] <= 1.0
        assert values["mrr@10"] <= values["hr@10"] <= values["hr@20"]
    lines = dump.read_text().splitlines()
    assert len(lines) == document["n_predictions"]
    row = json.loads(lines[0])
    assert {"user_id", "ts", "position", "target", "methods"} <= set(row)
    # the dump recomputes the summary: HR@10 of 'recent' from the lists themselves
    rows = [json.loads(line) for line in lines]
    hr = sum(r["target"] in r["methods"]["recent"][:10] for r in rows) / len(rows)
    assert hr == pytest.approx(document["methods"]["recent"]["hr@10"])


def test_evaluate_refuses_a_split_and_two_files_together(imported: Path) -> None:
    done = run_zmot(
        "evaluate",
        "--events", str(imported / "events.jsonl"),
        "--train", str(imported / "events.jsonl"),
        "--test", str(imported / "events.jsonl"),
        "--split-ratio", "0.8",
        "--catalog", str(imported / "catalog.jsonl"),
    )  # fmt: skip
    assert done.returncode == 1
    assert "not both" in done.stderr
