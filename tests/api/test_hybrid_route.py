"""The API serves the hybrid ranker of a ``zmot train --hybrid`` model (real lifespan, real
Redis): on a shop where co-visitation decides, the offer follows the neighbour and says so;
``ZMOT_HYBRID=off`` gives today's answer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.app import create_app
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.arbitration import Arbiter, OfferRequest
from recommender.core.catalog import load_catalog
from recommender.core.events import Event
from recommender.core.model import Model
from recommender.core.offers import catalog_offers
from recommender.core.replay import Profiler
from recommender.core.runtime import resolve
from recommender.core.settings import Settings
from tests.api.support import serve
from tests.api.test_decisions_route import NullSink
from tests.support.covisit_shop import title, train_hybrid
from tests.support.profiles import store_profile

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hybrid_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return train_hybrid(tmp_path_factory.mktemp("covisit"))


async def test_the_offer_follows_the_co_visitation_neighbour_and_says_so(
    isolated: Settings, hybrid_model: tuple[Path, Path]
) -> None:
    model_dir, catalog_path = hybrid_model
    settings = isolated.model_copy(update={"model_dir": model_dir, "catalog_path": catalog_path})
    catalog = load_catalog(catalog_path)
    model = Model.load(model_dir)
    now = time.time()
    viewed = Event(user_id="fan", type="page_view", item_id="lead-3").with_ts(now - 60)
    profile = Profiler(catalog, model.feature_config, model.profile_params).replay([viewed])["fan"]
    store = ProfileStore(connect(settings.redis_url), settings.redis_prefix, ttl_s=600)
    await store_profile(store, "fan", profile)
    await store.client.aclose()
    params = {"user_id": "fan", "k": 2, "debug": "true"}
    answers = {}
    for mode in ("auto", "off"):
        app = create_app(settings.model_copy(update={"hybrid": mode}), producer=NullSink())
        async with serve(app) as client:
            response = await client.get("/v1/next-best-offer", params=params)
            assert response.status_code == 200, response.text
            answers[mode] = response.json()
    served = answers["auto"]["offers"]
    assert served[0]["item_id"] == "pair-3"
    assert served[0]["reasons"][0] == f'people who viewed "{title("lead-3")}" also viewed this'
    assert 0.0 < served[0]["debug"]["propensity"] < 1.0
    # hybrid off: exactly the arbiter of the model and its calibration (today's path)
    plain = Arbiter(
        model,
        catalog,
        catalog_offers(catalog),
        config=resolve(
            settings.model_copy(update={"hybrid": "off"}), model.runtime_meta()
        ).arbitration,
    ).decide(profile, OfferRequest(k=2, debug=True), now)
    off = answers["off"]["offers"]
    assert [o["item_id"] for o in off] == [o.offer.item_id for o in plain.offers]
    assert [o["reasons"] for o in off] == [o.reasons for o in plain.offers]
    assert not any("also viewed" in r for o in off for r in o["reasons"])
