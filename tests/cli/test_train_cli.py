"""`zmot train` on a small demo shop: the hybrid tables ride along unless --no-hybrid; without
--out it registers versions that `zmot model` lists, shows, activates and rolls back."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from recommender.adapters.keys import person_key
from recommender.core.hybrid import rank
from recommender.core.model import Model
from recommender.core.profile import Profile
from recommender.core.registry import Registry
from recommender.core.settings import Settings
from tests.support.processes import run_zmot, worker_env


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    done = run_zmot("demo-data", "--out", str(out), "--users", "150")
    assert done.returncode == 0, done.stderr
    return out


def train(shop: Path, out: Path | None, *options: str, env: dict[str, str] | None = None) -> str:
    """``zmot train`` on the shop (``out``: ``--out``, else ``options`` say where); its output
    (stdout, then stderr)."""
    done = run_zmot(
        "train",
        "--events", str(shop / "events.jsonl"),
        "--catalog", str(shop / "catalog.jsonl"),
        *(["--out", str(out)] if out is not None else []),
        "--epochs", "3",
        *options,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_train_no_hybrid_writes_no_hybrid_tables(shop: Path, tmp_path: Path) -> None:
    stdout = train(shop, tmp_path, "--no-hybrid")
    assert "hybrid tables" not in stdout
    assert not (tmp_path / "hybrid.npz").exists()
    assert Model.load(tmp_path).hybrid is None


def test_train_writes_hybrid_tables_that_load_and_rank_by_default(
    shop: Path, tmp_path: Path
) -> None:
    stdout = train(shop, tmp_path)
    assert "hybrid tables:" in stdout and "MB on disk (hybrid.npz)" in stdout
    assert "MB in each API process" in stdout
    model = Model.load(tmp_path)
    assert model.hybrid is not None and model.hybrid.items
    assert model.hybrid.half_life_s == model.profile_params.half_life_s
    # an empty profile still gets the trending items (in the ranker's order)
    assert sorted(rank(model.hybrid, model, Profile(), 0.0, depth=50)) == sorted(
        model.hybrid.trending
    )


@pytest.mark.integration
def test_train_respects_erasures_when_asked(shop: Path, tmp_path: Path, isolated: Settings) -> None:
    first = json.loads((shop / "events.jsonl").read_text().splitlines()[0])["user_id"]
    client = redis.Redis.from_url(isolated.redis_url)
    key = person_key(isolated.redis_prefix, first)
    client.hset(key, "erased_at", repr(4102444799.0))  # erased at the end of 2099: all of it
    try:
        output = train(shop, tmp_path, "--respect-privacy", env=worker_env(isolated))
    finally:
        client.delete(key)
        client.close()
    n_first = sum(
        json.loads(line)["user_id"] == first
        for line in (shop / "events.jsonl").read_text().splitlines()
    )
    assert f"privacy: left out {n_first} of " in output


def zmot_ok(*args: str) -> str:
    done = run_zmot(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_train_registers_versions_and_model_commands_manage_them(
    shop: Path, tmp_path: Path
) -> None:
    registry = tmp_path / "models"
    first_out = train(shop, None, "--no-hybrid", "--registry", str(registry))
    first = run_zmot(
        "model", "list", "--registry", str(registry), "--json"
    )  # the version printed last by train is the registered one
    [row] = json.loads(first.stdout)
    v1 = row["version"]
    assert first_out.splitlines()[0] == v1  # stdout first: the version alone
    assert "activated" in first_out and "the registry had none active" in first_out
    assert row["active"] and row["artifact_bytes"] > 0 and row["events"] > 0
    assert row["data_range"]["first"] < row["data_range"]["last"]
    assert set(row["quality"]) == {"calibration_contexts"}  # no hybrid: no validation moments

    second_out = train(shop, None, "--no-hybrid", "--registry", str(registry), "--seed", "3")
    v2 = second_out.splitlines()[0]
    assert v2 != v1 and f"zmot model activate {v2}" in second_out
    assert (registry / "current").read_text().strip() == v1  # not activated unless asked

    listing = zmot_ok("model", "list", "--registry", str(registry))
    assert listing.splitlines() == [
        line for line in listing.splitlines() if line.startswith(("* ", "  "))
    ]
    assert f"* {v1}" in listing and f"  {v2}" in listing
    shown = json.loads(zmot_ok("model", "show", v2, "--registry", str(registry)))
    assert shown["version"] == v2 and not shown["active"] and shown["profile_params"]

    activated = zmot_ok("model", "activate", v2, "--registry", str(registry))
    assert "compatible: same feature config and profile math, swapped hot" in activated
    assert (registry / "current").read_text().strip() == v2
    rolled = zmot_ok("model", "rollback", "--registry", str(registry))
    assert f"rolled back: {v2} -> {v1}" in rolled
    assert (registry / "current").read_text().strip() == v1

    # a copy of v2 whose half-life differs builds profiles differently: refused, then forced
    v3 = v2[:-1] + ("0" if v2[-1] != "0" else "1")
    shutil.copytree(registry / v2, registry / v3)
    meta = json.loads((registry / v3 / "meta.json").read_text())
    meta["version"], meta["profile_params"]["half_life_s"] = v3, 3600.0
    (registry / v3 / "meta.json").write_text(json.dumps(meta))
    refused = run_zmot("model", "activate", v3, "--registry", str(registry))
    assert refused.returncode == 1
    assert "incompatible" in refused.stdout and "half_life_s" in refused.stdout
    assert "not activated" in refused.stderr
    assert (registry / "current").read_text().strip() == v1
    forced = zmot_ok("model", "activate", v3, "--registry", str(registry), "--force")
    assert f"active: {v3} (was {v1})" in forced


@pytest.mark.integration
def test_train_from_kafka_reads_the_topic_into_the_same_path(
    shop: Path, tmp_path: Path, isolated: Settings
) -> None:
    env = worker_env(isolated)
    replayed = run_zmot("replay", str(shop / "events.jsonl"), env=env)
    assert replayed.returncode == 0, replayed.stderr
    n_events = len((shop / "events.jsonl").read_text().splitlines())
    registry = tmp_path / "models"
    done = run_zmot(
        "train", "--catalog", str(shop / "catalog.jsonl"), "--from-kafka", "--since", "1d",
        "--registry", str(registry), "--epochs", "3", "--no-hybrid", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    version = done.stdout.splitlines()[0]
    assert f"read {n_events} events from {isolated.events_topic} (0 bad skipped)" in done.stderr
    manifest = json.loads((registry / version / "manifest.json").read_text())
    assert manifest["source"] == f"kafka:{isolated.events_topic} since 1d"
    assert manifest["events"] == n_events
    both = run_zmot(
        "train", "--catalog", str(shop / "catalog.jsonl"), "--from-kafka",
        "--events", str(shop / "events.jsonl"), "--registry", str(registry), env=env,
    )  # fmt: skip
    assert both.returncode == 1 and "exactly one of --events FILE and --from-kafka" in both.stderr


def test_retrain_activates_only_what_passes_the_gate(shop: Path, tmp_path: Path) -> None:
    registry = tmp_path / "models"

    def retrain(*options: str) -> subprocess.CompletedProcess[str]:
        return run_zmot(
            "retrain", "--catalog", str(shop / "catalog.jsonl"),
            "--events", str(shop / "events.jsonl"), "--registry", str(registry),
            "--epochs", "3", "--no-hybrid", *options,
        )  # fmt: skip

    first = retrain()
    assert first.returncode == 0, first.stderr
    v1 = first.stdout.strip()
    assert (registry / "current").read_text().strip() == v1  # nothing to gate against

    # must beat the served model by a whole HR point: impossible, so refused
    refused = retrain("--max-drop", "-1.0")
    assert refused.returncode == 3, refused.stderr
    assert "gate REFUSED: HR@10 candidate" in refused.stderr and "keeps serving" in refused.stderr
    assert (registry / "current").read_text().strip() == v1
    [v2] = [v for v in Registry(registry).versions() if v != v1]
    gate = Registry(registry).manifest(v2)["quality"]["gate"]
    assert gate["passed"] is False and gate["against"] == v1 and gate["n_predictions"] > 0

    passed = retrain("--max-drop", "1.0")
    assert passed.returncode == 0, passed.stderr
    assert "gate passes" in passed.stderr
    assert (registry / "current").read_text().strip() == passed.stdout.strip() != v1


def test_retrain_every_repeats_gates_each_run_and_stops_after_runs(
    shop: Path, tmp_path: Path
) -> None:
    registry = tmp_path / "models"

    def retrain(*options: str) -> subprocess.CompletedProcess[str]:
        return run_zmot(
            "retrain", "--catalog", str(shop / "catalog.jsonl"),
            "--events", str(shop / "events.jsonl"), "--registry", str(registry),
            "--epochs", "2", "--no-hybrid", "--every", "1s", *options,
        )  # fmt: skip

    three = retrain("--runs", "3", "--max-drop", "1.0")
    assert three.returncode == 0, three.stderr
    versions = three.stdout.split()
    assert len(versions) == 3 and len(set(versions)) == 3
    assert Registry(registry).versions() == sorted(versions)
    assert Registry(registry).history() == versions  # each run activated in turn
    assert (registry / "current").read_text().strip() == versions[-1]
    assert three.stderr.count("next retraining in 1s") == 2  # no wait after the last run
    assert three.stderr.count("gate passes") == 2  # the first had nothing to gate against

    # Two runs that must beat the served model by a whole HR point: both refused, each
    # registered, nothing activated, exit 3 after the last.
    refused = retrain("--runs", "2", "--max-drop", "-1.0")
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.count("registered but not activated") == 2 and refused.stdout == ""
    assert "next retraining in 1s (run 2)" in refused.stderr
    assert len(Registry(registry).versions()) == 5
    assert (registry / "current").read_text().strip() == versions[-1]
    lone = run_zmot("retrain", "--catalog", "c", "--events", "e", "--runs", "2")
    assert lone.returncode == 1 and "--runs goes with --every" in lone.stderr
