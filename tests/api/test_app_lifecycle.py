"""Start-up, shut-down, probes, thread pinning and the OpenAPI document."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from threadpoolctl import threadpool_info

from api.app import create_app
from api.blas import BLAS_ENV_VARS
from api.engine import load_engine
from recommender.adapters.localstack import free_port
from recommender.core.arbitration import OfferRequest
from recommender.core.errors import ConfigError, ModelError
from recommender.core.settings import Settings
from tests.api.support import FakeArbiter, ServeFactory, dead_redis_url, serve


def test_load_engine_without_a_model_dir_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ZMOT_MODEL_DIR"):
        load_engine(Settings(model_dir=None))
    with pytest.raises(ModelError, match="zmot train"):
        load_engine(Settings(model_dir=tmp_path / "missing"))


def test_load_engine_needs_offers(model_files: tuple[Path, Path]) -> None:
    model_dir, _ = model_files
    with pytest.raises(ConfigError, match="ZMOT_OFFERS_PATH"):
        load_engine(Settings(model_dir=model_dir, catalog_path=None))


def test_missing_catalog_file_is_an_empty_catalog_as_in_the_worker(
    model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    model_dir, _ = model_files
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(ConfigError, match="ZMOT_OFFERS_PATH"):  # no catalog, so no offers
        load_engine(Settings(model_dir=model_dir, catalog_path=missing))
    offers = tmp_path / "offers.jsonl"
    offers.write_text('{"offer_id": "deal-1", "item_id": "mount-1", "title": "Mount -20%"}\n')
    engine = load_engine(Settings(model_dir=model_dir, catalog_path=missing, offers_path=offers))
    assert len(engine.catalog) == 0
    assert engine.n_offers == 1


def test_load_engine_with_an_offers_file(model_files: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, catalog_path = model_files
    offers = tmp_path / "offers.jsonl"
    offers.write_text('{"offer_id": "deal-1", "item_id": "mount-1", "title": "Mount -20%"}\n')
    engine = load_engine(
        Settings(model_dir=model_dir, catalog_path=catalog_path, offers_path=offers)
    )
    decision = engine.arbiter.decide(None, OfferRequest(k=3), now=0.0)
    assert [s.offer.offer_id for s in decision.offers] == ["deal-1"]
    assert engine.catalog.get("tv-1") is not None


@pytest.mark.integration
async def test_probes_and_blas_pinned_while_serving(
    client: httpx.AsyncClient, fake_arbiter: FakeArbiter
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"model": "ok", "redis": "ok"},
        "catalog_version": fake_arbiter.version,
        "model_version": "fake-1",
    }
    assert all(os.environ[var] == "1" for var in BLAS_ENV_VARS)
    pools = threadpool_info()
    assert pools, "numpy's BLAS should be loaded and visible to threadpoolctl"
    assert {p["num_threads"] for p in pools} == {1}


@pytest.mark.integration
async def test_readyz_is_degraded_and_names_redis_when_it_stops_answering(
    isolated: Settings, fake_engine: object
) -> None:
    import dataclasses

    from recommender.adapters.redis_store import ProfileStore, connect

    app = create_app(isolated, engine=fake_engine)  # type: ignore[arg-type]
    async with serve(app) as client:
        services = app.state.services
        dead = ProfileStore(connect(dead_redis_url()), "x:", ttl_s=60)
        app.state.services = dataclasses.replace(services, store=dead)
        response = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200
    assert response.status_code == 200  # it can still serve: popular offers, flagged
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["model"] == "ok"
    assert body["checks"]["redis"].startswith("failed: Redis is not reachable")


@pytest.mark.integration
async def test_start_fails_fast_when_redis_is_unreachable(
    isolated: Settings, fake_engine: object, serve_app: ServeFactory
) -> None:
    settings = isolated.model_copy(update={"redis_url": dead_redis_url()})
    with pytest.raises(ConfigError, match="ZMOT_REDIS_URL"):
        async with serve_app(settings, engine=fake_engine):
            pass


@pytest.mark.integration
async def test_start_fails_fast_when_kafka_is_unreachable(
    isolated: Settings, fake_engine: object, serve_app: ServeFactory
) -> None:
    settings = isolated.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    with pytest.raises(ConfigError, match="ZMOT_KAFKA_BOOTSTRAP"):
        async with serve_app(settings, engine=fake_engine):
            pass


@pytest.mark.integration
async def test_shutdown_restores_threads_and_environment(
    isolated: Settings, fake_engine: object, serve_app: ServeFactory
) -> None:
    before_env = {var: os.environ.get(var) for var in BLAS_ENV_VARS}
    before_threads = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    async with serve_app(isolated, engine=fake_engine) as client:
        assert (await client.get("/healthz")).status_code == 200
    assert {var: os.environ.get(var) for var in BLAS_ENV_VARS} == before_env
    after = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    assert {k: after[k] for k in before_threads} == before_threads


def test_openapi_documents_bodies_and_errors() -> None:
    doc = create_app(Settings()).openapi()
    paths = doc["paths"]
    assert set(paths) == {
        "/healthz",
        "/readyz",
        "/v1/events",
        "/v1/next-best-offer",
        "/v1/next-best-offer:batch",
        "/v1/admin/reload",
        "/v1/admin/model",
        "/v1/users/{user_id}/profile",
        "/v1/users/{user_id}",
        "/v1/users/{user_id}/export",
        "/v1/users/{user_id}/consent",
        "/v1/users/{user_id}/links",
        "/metrics",
        "/ops",
        "/ops/lag",
        "/ops/summary",
        "/sdk/zmot.js",
        "/demo/shop",
    }
    post = paths["/v1/events"]["post"]
    assert post["summary"] and post["description"].startswith("Validate one event or a batch")
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][1]["maxItems"] == 10_000
    assert set(post["responses"]) == {"202", "401", "403", "413", "415", "422", "429", "503"}
    err = post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert err.endswith("/ValidationErrorResponse")
    nbo = paths["/v1/next-best-offer"]["get"]
    assert {p["name"] for p in nbo["parameters"]} == {
        "user_id",
        "k",
        "placement",
        "channel",
        "context_item",
        "debug",
        "same_category",
        "timeout_ms",
        "accept-language",
    }
    ok = nbo["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/NextBestOfferResponse")
    assert nbo["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ValidationErrorResponse"
    )
