"""`zmot import` then `zmot evaluate --json` on the real Taobao sample, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHARED_DATA
from tests.support.processes import run_zmot

TAOBAO = SHARED_DATA / "taobao-userbehavior-10k.csv"
METHODS = {
    "live",
    "frozen",
    "popular",
    "popular_in_category",
    "recent",
    "covisit",
    "session_knn",
    "hybrid",
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("taobao")
    done = run_zmot("import", "--format", "taobao", str(TAOBAO), "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    return out


def evaluate_json(imported: Path, dump: Path, *options: str) -> dict[str, Any]:
    """`zmot evaluate --json --dump-predictions` on the imported sample, split 80/20."""
    done = run_zmot(
        "evaluate",
        "--events", str(imported / "events.jsonl"),
        "--split-ratio", "0.8",
        "--catalog", str(imported / "catalog.jsonl"),
        "--json",
        "--dump-predictions", str(dump),
        *options,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)  # one JSON document: logs on stderr
    return document


def test_evaluate_json_prints_one_document_with_every_metric(
    imported: Path, tmp_path: Path
) -> None:
    dump = tmp_path / "predictions.jsonl"
    document = evaluate_json(imported, dump, "--k", "10,20", "--epochs", "5")
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
    for method in ("covisit", "hybrid"):
        hr = sum(r["target"] in r["methods"][method][:10] for r in rows) / len(rows)
        assert hr == pytest.approx(document["methods"][method]["hr@10"])
    # both slices ride along; the top level is the chosen one (any)
    assert document["items"] == "any"
    assert document["by_items"]["any"]["methods"] == document["methods"]
    new = document["by_items"]["new"]
    assert new["n_predictions"] == sum(r["new"] for r in rows) > 0
    assert new["methods"]["recent"]["hr@10"] == 0.0
    # discover: the same new targets, each list without the user's own items (the dump's
    # `discover` lists recompute it; every prediction carries them)
    discover = document["by_items"]["discover"]
    assert discover["n_predictions"] == new["n_predictions"]
    fresh = [r for r in rows if r["new"]]
    assert all("discover" in r for r in rows)
    for r in rows:
        if not r["new"]:  # the target is one of the user's own items: never in these lists
            assert all(r["target"] not in listed for listed in r["discover"].values())
    for method in ("live", "covisit", "popular_in_category"):
        hr = sum(r["target"] in r["discover"][method][:10] for r in fresh) / len(fresh)
        assert hr == pytest.approx(discover["methods"][method]["hr@10"])
        assert hr >= new["methods"][method]["hr@10"]


@pytest.mark.parametrize("option", ["--items", "--target"])
def test_evaluate_items_new_scores_only_items_new_to_the_user(
    imported: Path, tmp_path: Path, option: str
) -> None:
    dump = tmp_path / "predictions.jsonl"
    document = evaluate_json(imported, dump, "--epochs", "2", option, "new")
    assert document["items"] == "new"
    assert document["methods"] == document["by_items"]["new"]["methods"]
    assert 0 < document["n_predictions"] < document["by_items"]["any"]["n_predictions"]
    assert document["methods"]["recent"]["hr@10"] == 0.0
    rows = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(rows) == document["n_predictions"] and all(r["new"] for r in rows)


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


def test_evaluate_walks_a_stable_sample_of_users_above_max_predictions(
    imported: Path, tmp_path: Path
) -> None:
    first = evaluate_json(
        imported, tmp_path / "a.jsonl", "--epochs", "2", "--max-predictions", "500"
    )
    assert 0 < first["n_predictions"] <= 500
    assert first["max_predictions"] == 500
    assert first["sampled_users"] == first["n_users"] < 111  # of the sample's 111 test users
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    again = evaluate_json(
        imported, tmp_path / "b.jsonl", "--epochs", "2", "--max-predictions", "500"
    )
    assert {r["user_id"] for r in rows} == {
        json.loads(line)["user_id"] for line in (tmp_path / "b.jsonl").read_text().splitlines()
    }
    assert again["methods"]["recent"] == first["methods"]["recent"]
