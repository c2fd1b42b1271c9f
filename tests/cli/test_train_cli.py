"""`zmot train` on a small demo shop: the hybrid tables ride along unless --no-hybrid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from recommender.core.hybrid import rank
from recommender.core.model import Model
from recommender.core.privacy import person_hash
from recommender.core.profile import Profile
from recommender.core.settings import Settings
from tests.support.processes import run_zmot, worker_env


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shop")
    done = run_zmot("demo-data", "--out", str(out), "--users", "150")
    assert done.returncode == 0, done.stderr
    return out


def train(shop: Path, out: Path, *options: str, env: dict[str, str] | None = None) -> str:
    """``zmot train`` on the shop; its output (stdout, then stderr)."""
    done = run_zmot(
        "train",
        "--events", str(shop / "events.jsonl"),
        "--catalog", str(shop / "catalog.jsonl"),
        "--out", str(out),
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
    key = f"{isolated.redis_prefix}person:{person_hash(first)}"
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
