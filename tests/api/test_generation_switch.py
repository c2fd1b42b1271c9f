"""The API on a stack with profile generations (in-process app, real Redis): it serves the live
generation's profiles from the start, an erasure during a rebuild deletes the rebuilding
profile too, and a generation going live swaps model and profile store in one look."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import create_app
from recommender.adapters.generation_store import GenerationStore
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.settings import Settings
from tests.api.support import serve, two_generations
from tests.support.profiles import profile_of, store_profile

pytestmark = pytest.mark.integration


async def test_erasure_reaches_the_rebuild_and_the_switch_moves_model_and_profiles(
    isolated: Settings, model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    model_dir, catalog_path = model_files
    reg = two_generations(model_dir, tmp_path / "registry")
    settings = isolated.model_copy(
        update={"model_dir": reg.root, "catalog_path": catalog_path, "model_poll_s": 0.0}
    )
    client = connect(settings.redis_url)
    generations = GenerationStore(client, settings.redis_prefix, settings.consumer_group)
    live = ProfileStore(client, settings.redis_prefix, 3600)
    try:
        rebuild = await generations.start_rebuild("v2")
        rebuilt = ProfileStore(client, rebuild.prefix, 3600)
        for store, weight in ((live, 1.0), (rebuilt, 5.0)):
            await store_profile(store, "gone", profile_of({"q:tv": weight}))
            await store_profile(store, "kept", profile_of({"q:tv": weight}))
        app = create_app(settings)
        async with serve(app) as api:
            ready = (await api.get("/readyz")).json()
            assert ready["profiles"]["rebuild"]["name"] == rebuild.name
            assert (await api.delete("/v1/users/gone")).status_code == 200
            assert await live.get("gone") is None and await rebuilt.get("gone") is None
            before = (await api.get("/v1/users/kept/profile")).json()
            assert before["features"]["q:tv"] == pytest.approx(1.0, rel=1e-3)

            assert await generations.switch(rebuild, ttl_s=60) is not None
            swapped = (await api.post("/v1/admin/model")).json()  # one look, now
            assert swapped == {"model_version": "v2", "previous": "v1"}
            after = (await api.get("/v1/users/kept/profile")).json()
            assert after["features"]["q:tv"] == pytest.approx(5.0, rel=1e-3)
            answer = (await api.get("/v1/next-best-offer", params={"user_id": "kept"})).json()
            assert answer["model_version"] == "v2"
            assert app.state.ops.group == rebuild.group  # lag follows the live group

        again = create_app(settings)  # a restarted API serves the live generation at once
        async with serve(again) as api:
            assert (await api.get("/readyz")).json()["model_version"] == "v2"
            after = (await api.get("/v1/users/kept/profile")).json()
            assert after["features"]["q:tv"] == pytest.approx(5.0, rel=1e-3)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
