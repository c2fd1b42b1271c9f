"""Next-best-offer decisions over HTTP: deadline with a frozen Redis, batch, language, ratings."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis

from api.app import create_app
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.localstack import free_port
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.events import Event
from recommender.core.feedback import CounterKey, PartitionUpdate
from recommender.core.settings import Settings
from tests.api.support import serve
from tests.support.profiles import PutProfile, profile_of, store_profile

pytestmark = pytest.mark.integration

MARGIN_S = 0.25  # event loop, fallback and HTTP on a loaded two-core machine


class NullSink:
    """A producer that accepts everything (these tests send no events)."""

    async def send_many(self, events: Sequence[Event]) -> None:
        return None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test only, on a free port, so it can be frozen with SIGSTOP."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield proc, f"redis://127.0.0.1:{port}/0"
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=10)


async def test_frozen_redis_answers_within_timeout_ms_as_fallback(
    isolated: Settings,
    model_files: tuple[Path, Path],
    own_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = own_redis
    model_dir, catalog_path = model_files
    settings = isolated.model_copy(
        update={"model_dir": model_dir, "catalog_path": catalog_path, "redis_url": url}
    )
    store = ProfileStore(connect(url), settings.redis_prefix, ttl_s=600)
    await store_profile(store, "fan", profile_of({"q:tv": 1.5}))
    await store.client.aclose()
    async with serve(create_app(settings, producer=NullSink())) as client:
        params = {"user_id": "fan", "timeout_ms": 150, "placement": "ad"}
        warm = (await client.get("/v1/next-best-offer", params=params)).json()
        assert warm["fallback"] is False and warm["offers"][0]["item_id"] == "tv-1"
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            for _ in range(3):
                started = time.monotonic()
                response = await client.get("/v1/next-best-offer", params=params)
                elapsed = time.monotonic() - started
                assert response.status_code == 200, response.text
                body = response.json()
                assert elapsed < 0.150 + MARGIN_S, elapsed
                assert body["fallback"] is True and body["offers"], body
                assert "timeout_ms" in body["note"]
                assert body["offers"][0]["reasons"] == ["popular with other shoppers"]
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        again = (await client.get("/v1/next-best-offer", params=params)).json()
        assert again["fallback"] is False


async def test_batch_reads_profiles_in_one_round_trip(
    isolated: Settings,
    model_files: tuple[Path, Path],
    put_profile: PutProfile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model_dir, catalog_path = model_files
    settings = isolated.model_copy(update={"model_dir": model_dir, "catalog_path": catalog_path})
    await put_profile("tv", profile_of({"q:tv": 1.5}))
    await put_profile("hiker", profile_of({"q:boots": 1.5}))
    calls: list[int] = []
    real = PrivacyStore.served_profiles

    async def counted(self: PrivacyStore, user_ids: Sequence[str], half_life_s: float) -> object:
        calls.append(len(user_ids))
        return await real(self, user_ids, half_life_s)

    async def single(self: ProfileStore, user_id: str) -> object:
        raise AssertionError("batch must not read profiles one by one")

    monkeypatch.setattr(PrivacyStore, "served_profiles", counted)
    monkeypatch.setattr(ProfileStore, "get", single)
    async with serve(create_app(settings, producer=NullSink())) as client:
        response = await client.post(
            "/v1/next-best-offer:batch",
            json={"user_ids": ["tv", "stranger", "hiker"], "k": 1, "debug": True},
        )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert calls == [3]
    assert [r["user_id"] for r in results] == ["tv", "stranger", "hiker"]
    assert [r["offers"][0]["item_id"] for r in results] == ["tv-1", "boots-1", "boots-1"]
    assert [r["fallback"] for r in results] == [False, True, False]
    assert results[0]["stage"] == "zmot" and results[1]["stage"] == "stimulus"
    assert set(results[0]["offers"][0]["debug"]) >= {"propensity", "priority"}
    assert results[1]["offers"][0]["debug"]["propensity"] is None


async def test_reasons_in_the_request_language_with_social_proof(
    isolated: Settings, model_files: tuple[Path, Path], put_profile: PutProfile
) -> None:
    model_dir, catalog_path = model_files
    settings = isolated.model_copy(update={"model_dir": model_dir, "catalog_path": catalog_path})
    await put_profile("fan", profile_of({"q:tv": 1.5}))
    client = connect(settings.redis_url)
    # rating aggregates as the worker keeps them: 120 ratings summing to 552 (mean 4.6)
    feedback = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
    ratings = {CounterKey("ratings", "tv-1"): 120, CounterKey("rating_sum", "tv-1"): 552}
    assert await feedback.apply([PartitionUpdate(0, None, 0, ratings)]) == []
    await client.aclose()
    expected = {
        "de-DE,de;q=0.9": ("Sie haben nach 'tv' gesucht", "mit 4.6 bewertet von 120 Käufern"),
        "it": ("hai cercato 'tv'", "valutato 4.6 da 120 acquirenti"),
        "fr-FR, en;q=0.5": ("you searched 'tv'", "rated 4.6 by 120 buyers"),
        "": ("you searched 'tv'", "rated 4.6 by 120 buyers"),
    }
    async with serve(create_app(settings, producer=NullSink())) as client:
        for header, (searched, proof) in expected.items():
            headers = {"Accept-Language": header} if header else {}
            body = (
                await client.get(
                    "/v1/next-best-offer", params={"user_id": "fan", "k": 1}, headers=headers
                )
            ).json()
            assert body["offers"][0]["reasons"] == [searched, proof], header
