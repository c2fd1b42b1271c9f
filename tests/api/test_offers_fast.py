"""The hot path of ``GET /v1/next-best-offer`` (``api/routes/offers_fast.py``): which queries it
takes, and that its answers are the FastAPI route's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import api.routes.offers_fast as fast
from api.engine import Engine
from api.routes.offers import OfferQuery
from api.routes.offers_fast import parse_offer_query
from api.schemas import NextBestOfferResponse, OfferOut, constructed
from recommender.core.access import add_key
from recommender.core.catalog import Catalog
from recommender.core.scoring import Decision, ScoredOffer, ServedOffer
from recommender.core.settings import Settings
from tests.api.support import ServeFactory
from tests.support.profiles import PutProfile, profile_of


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"user_id=u1", OfferQuery("u1")),
        (
            b"user_id=u1&k=3&placement=home&channel=web&context_item=tv-1&debug=true"
            b"&same_category=0&timeout_ms=250",
            OfferQuery("u1", 3, "home", "web", "tv-1", True, False, 250),
        ),
        (b"k=12&user_id=a%20b+c%C3%A9&debug=1", OfferQuery("a b c\u00e9", 12, debug=True)),
        (b"user_id=" + b"x" * 128 + b"&timeout_ms=60000", OfferQuery("x" * 128, timeout_ms=60000)),
    ],
)
def test_plainly_valid_queries_are_read_as_the_fastapi_route_reads_them(
    query: bytes, expected: OfferQuery
) -> None:
    assert parse_offer_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"",
        b"k=3",  # no user
        b"user_id=",
        b"user_id=" + b"x" * 129,
        b"user_id=u&user_id=v",  # repeated
        b"user_id=u&k=0",
        b"user_id=u&k=03",
        b"user_id=u&k=-1",
        b"user_id=u&k=3.0",
        b"user_id=u&k=",
        b"user_id=u&timeout_ms=60001",
        b"user_id=u&debug=True",  # pydantic reads it; the FastAPI route decides
        b"user_id=u&debug=yes",
        b"user_id=u&channel=fax",
        b"user_id=u&placement=",
        b"user_id=u&context_item=" + b"x" * 257,
        b"user_id=u&unknown=1",
        b"user_id=u&&k=3",
        b"user_id=u&k",
        b"user_id=%ff",  # not UTF-8
        "user_id=caf\u00e9".encode(),  # raw non-ASCII bytes
    ],
)
def test_anything_else_is_left_to_the_fastapi_route(query: bytes) -> None:
    assert parse_offer_query(query) is None


@pytest.mark.integration
async def test_the_fast_route_answers_as_the_fastapi_route(
    isolated: Settings,
    model_files: tuple[Path, Path],
    put_profile: PutProfile,
    serve_app: ServeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same request answered by each route (an unknown parameter, ignored by FastAPI,
    sends it to the FastAPI route) gives the same answer, but for the decision id."""
    model_dir, catalog_path = model_files
    settings = isolated.model_copy(update={"model_dir": model_dir, "catalog_path": catalog_path})
    now = time.time()
    await put_profile("fan", profile_of({"q:tv": 1.5, "kind:search": 0.1}))
    await put_profile(
        "owner", profile_of({"q:tv": 1.5, "cat:electronics.tv": 3.0}, purchases={"tv-1": now})
    )
    served_fast: list[Any] = []
    serialise = fast._serialise

    def counted(answer: Any) -> bytes:
        served_fast.append(answer)
        return serialise(answer)

    monkeypatch.setattr(fast, "_serialise", counted)
    queries = [
        {"user_id": "fan", "k": "2"},
        {"user_id": "owner", "k": "3", "debug": "true", "same_category": "1"},
        {"user_id": "stranger", "placement": "home", "channel": "app"},
        {"user_id": "fan", "context_item": "tv-1", "timeout_ms": "5000"},
    ]
    async with serve_app(settings) as client:
        for query in queries:
            quick = await client.get("/v1/next-best-offer", params=query)
            slow = await client.get("/v1/next-best-offer", params={**query, "via": "fastapi"})
            assert quick.status_code == slow.status_code == 200
            assert quick.headers["content-type"] == slow.headers["content-type"]
            a, b = quick.json(), slow.json()
            assert a.pop("decision_id") != b.pop("decision_id")
            assert a == b
        # an invalid query still gets the FastAPI route's 422
        bad = await client.get("/v1/next-best-offer", params={"user_id": "fan", "k": "0"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["field"] == "k"
        # k above ZMOT_MAX_K is refused by the shared code, with the same body either way
        too_many = {"user_id": "fan", "k": str(settings.max_k + 1)}
        over = await client.get("/v1/next-best-offer", params=too_many)
        over_slow = await client.get("/v1/next-best-offer", params={**too_many, "via": "x"})
        assert over.status_code == over_slow.status_code == 422
        assert over.json() == over_slow.json()
    assert len(served_fast) == len(queries)


def test_answers_built_without_validation_serialise_as_validated_ones(catalog: Catalog) -> None:
    """``from_decision`` skips pydantic's validation: its JSON is that of the validated
    model, also for numpy floats, integer values and missing items."""
    tv = catalog.get("tv-1")
    debug = {"propensity": np.float64(0.125), "value": 5, "priority": None}
    offers = [
        ScoredOffer(ServedOffer("o1", "tv-1", "Deal", 5), tv, np.float64(0.25), ["r1"], debug),
        ScoredOffer(ServedOffer("o2", "gone", "Old"), None, -1, [], None, "explore", 0.5),
    ]
    decision = Decision(offers, False, "zmot", "d1", "a note")
    built = NextBestOfferResponse.from_decision(
        "u1", decision, catalog, "m1", "home", "c1", personalised=True, experiment="e", arm="a"
    )
    validated = NextBestOfferResponse(
        user_id="u1",
        offers=[
            OfferOut(
                offer_id="o1", item_id="tv-1", title="Deal", category="electronics.tv",
                score=np.float64(0.25), reasons=["r1"], policy="greedy", probability=1.0,
                debug=debug,
            ),
            OfferOut(
                offer_id="o2", item_id="gone", title="Old", category=None, score=-1,
                reasons=[], policy="explore", probability=0.5,
            ),
        ],
        model_version="m1", fallback=False, placement="home", stage="zmot", decision_id="d1",
        catalog_version="c1", note="a note", personalised=True, experiment="e", arm="a",
    )  # fmt: skip
    assert fast._serialise(built) == validated.model_dump_json().encode()


def test_constructed_is_pydantics_model_construct() -> None:
    """``constructed`` builds what ``model_construct`` builds: the same fields, field set,
    extra and private state, also when a field is left out (then it is model_construct)."""
    values: dict[str, Any] = {
        "offer_id": "o1", "item_id": "tv-1", "title": "Deal", "category": None, "score": 0.5,
        "reasons": ["r"], "policy": "greedy", "probability": 1.0, "debug": None,
    }  # fmt: skip
    partial = {k: v for k, v in values.items() if k != "debug"}
    for given in (values, partial):
        built, want = constructed(OfferOut, dict(given)), OfferOut.model_construct(**given)
        assert built == want
        assert built.__dict__ == want.__dict__
        assert built.model_fields_set == want.model_fields_set
        assert built.__pydantic_extra__ == want.__pydantic_extra__
        assert built.__pydantic_private__ == want.__pydantic_private__
        assert built.model_dump_json() == want.model_dump_json()


@pytest.mark.integration
async def test_the_fast_route_checks_keys_origins_and_rates_as_the_fastapi_route(
    isolated: Settings,
    tmp_path: Path,
    fake_engine: Engine,
    serve_app: ServeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = tmp_path / "keys.yaml"
    browser = add_key(
        keys, "shop", ["offers:read"], origins=["https://shop.example"], rate=(0.01, 2)
    )
    other = add_key(keys, "ops", ["ops:read"])
    served_fast: list[Any] = []
    serialise = fast._serialise
    monkeypatch.setattr(fast, "_serialise", lambda a: served_fast.append(a) or serialise(a))
    settings = isolated.model_copy(update={"api_keys_file": keys})
    origin = {"Origin": "https://shop.example"}
    url = "/v1/next-best-offer?user_id=u1"
    async with serve_app(settings, engine=fake_engine) as client:
        assert (await client.get(url)).status_code == 401
        wrong = await client.get(url, headers={"Authorization": f"Bearer {other}"})
        assert wrong.status_code == 403
        evil = await client.get(
            url, headers={"Authorization": f"Bearer {browser}", "Origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        assert "access-control-allow-origin" not in evil.headers
        ok = await client.get(url, headers={"X-API-Key": browser, **origin})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://shop.example"
        again = await client.get(url, headers={"X-API-Key": browser, **origin})
        assert again.status_code == 200  # the burst of 2
        over = await client.get(url, headers={"X-API-Key": browser, **origin})
        assert over.status_code == 429
        assert int(over.headers["retry-after"]) >= 1
        assert over.headers["access-control-allow-origin"] == "https://shop.example"
    assert len(served_fast) == 2


@pytest.mark.integration
async def test_the_fast_route_sends_the_fastapi_routes_headers(
    isolated: Settings,
    model_files: tuple[Path, Path],
    put_profile: PutProfile,
    serve_app: ServeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast route, an ASGI app of its own, sends the status and the header list a
    Starlette ``Response`` of the FastAPI route sends (but for the decision id, the same body),
    and reads ``Accept-Language`` as ``Request.headers`` does."""
    model_dir, catalog_path = model_files
    settings = isolated.model_copy(update={"model_dir": model_dir, "catalog_path": catalog_path})
    await put_profile("fan", profile_of({"q:tv": 1.5, "kind:search": 0.1}))
    served_fast: list[Any] = []
    serialise = fast._serialise
    monkeypatch.setattr(fast, "_serialise", lambda a: served_fast.append(a) or serialise(a))
    async with serve_app(settings) as client:
        for headers in ({}, {"Accept-Language": "de-DE,de;q=0.9"}, {"accept-language": "fr"}):
            query = {"user_id": "fan", "k": "2"}
            quick = await client.get("/v1/next-best-offer", params=query, headers=headers)
            slow = await client.get(
                "/v1/next-best-offer", params={**query, "via": "fastapi"}, headers=headers
            )
            assert quick.status_code == slow.status_code == 200
            assert quick.headers.multi_items() == slow.headers.multi_items()
            a, b = quick.json(), slow.json()
            a.pop("decision_id"), b.pop("decision_id")
            assert a == b
    assert len(served_fast) == 3
