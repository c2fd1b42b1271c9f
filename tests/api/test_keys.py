"""API keys on the real app (real Redis and Kafka): every route x {no key, wrong scope, right
scope} -> {401, 403, 2xx}; the ways a key may be sent; browser keys (event types, CORS);
reloading the keys file; refusing to serve open off loopback."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.auth import access_from_settings
from api.engine import Engine
from recommender.core.access import SCOPES, add_key, load_keys, revoke_key
from recommender.core.errors import ConfigError
from recommender.core.settings import Settings
from tests.api.support import ServeFactory
from tests.support.profiles import PutProfile, profile_of

pytestmark = pytest.mark.integration

VIEW = {"user_id": "u1", "type": "page_view", "item_id": "tv-1"}
OPEN_ROUTES = {"/healthz", "/readyz", "/sdk/zmot.js"}
DEMO_ROUTES = {"/demo/shop"}  # open, and 404 unless ZMOT_DEMO_SHOP=true


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    scope: str
    json: Any = None


# One call per route (the route templates are checked against the app below).
CALLS = {
    "/v1/events": Call("POST", "/v1/events", "events:write", VIEW),
    "/v1/next-best-offer": Call("GET", "/v1/next-best-offer?user_id=u1", "offers:read"),
    "/v1/next-best-offer:batch": Call(
        "POST", "/v1/next-best-offer:batch", "offers:read", {"user_ids": ["u1", "u2"]}
    ),
    "/v1/users/{user_id}/profile": Call("GET", "/v1/users/u1/profile", "profiles:read"),
    "/v1/users/{user_id}/export": Call("GET", "/v1/users/u1/export", "profiles:read"),
    "/v1/users/{user_id}/consent": Call(
        "PUT", "/v1/users/u2/consent", "profiles:erase", {"profiling": True}
    ),
    "/v1/users/{user_id}": Call("DELETE", "/v1/users/u3", "profiles:erase"),
    "/v1/users/{user_id}/links": Call(
        "POST", "/v1/users/u1/links", "events:write", {"anonymous_id": "anon-1"}
    ),
    "/v1/admin/reload": Call("POST", "/v1/admin/reload", "admin"),
    "/v1/admin/model": Call("POST", "/v1/admin/model", "admin"),
    "/metrics": Call("GET", "/metrics", "ops:read"),
    "/ops": Call("GET", "/ops", "ops:read"),
    "/ops/lag": Call("GET", "/ops/lag", "ops:read"),
    "/ops/summary": Call("GET", "/ops/summary", "ops:read"),
}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.yaml"


@pytest.fixture
def make_key(keys_file: Path) -> Callable[..., str]:
    counter = iter(range(1000))

    def make(scopes: list[str], **options: Any) -> str:
        return add_key(keys_file, f"k{next(counter)}", scopes, **options)

    return make


@pytest.fixture
async def keyed(
    isolated: Settings,
    keys_file: Path,
    make_key: Callable[..., str],
    fake_engine: Engine,
    serve_app: ServeFactory,
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], dict[str, str]]]:
    """(client of the app with keys on, scope -> key with only it, scope -> key with all but it)."""
    only = {scope: make_key([scope]) for scope in SCOPES}
    others = {scope: make_key([s for s in SCOPES if s != scope]) for scope in SCOPES}
    settings = isolated.model_copy(update={"api_keys_file": keys_file})
    async with serve_app(settings, engine=fake_engine) as client:
        yield client, only, others


async def send(
    client: httpx.AsyncClient, call: Call, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.request(call.method, call.path, json=call.json, headers=headers)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_route_is_in_the_matrix_or_open() -> None:
    app = create_app(Settings())
    paths = set(app.openapi()["paths"])  # every API route (the docs pages are not in it)
    assert paths - OPEN_ROUTES - DEMO_ROUTES == set(CALLS)


async def test_every_route_401_without_key_403_with_wrong_scope_2xx_with_its_scope(
    keyed: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]], put_profile: PutProfile
) -> None:
    client, only, others = keyed
    await put_profile("u1", profile_of({"q:tv": 1.0}))
    outcomes: dict[str, tuple[int, int, int]] = {}
    for template, call in CALLS.items():
        none = await send(client, call)
        wrong = await send(client, call, bearer(others[call.scope]))
        right = await send(client, call, bearer(only[call.scope]))
        outcomes[template] = (none.status_code, wrong.status_code, right.status_code // 100 * 100)
        assert right.status_code // 100 == 2, (template, right.status_code, right.text)
    assert outcomes == {template: (401, 403, 200) for template in CALLS}
    for path in OPEN_ROUTES:
        assert (await client.get(path)).status_code == 200
    for path in DEMO_ROUTES:
        assert (await client.get(path)).status_code == 404


async def test_unknown_key_is_401_and_says_how_to_send_one(
    keyed: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]],
) -> None:
    client, only, _ = keyed
    wrong = only["offers:read"][:-1] + ("A" if only["offers:read"][-1] != "A" else "B")
    response = await client.get("/v1/next-best-offer?user_id=u1", headers=bearer(wrong))
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown API key"
    missing = await client.get("/v1/next-best-offer?user_id=u1")
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert missing.headers["www-authenticate"].startswith("Bearer")


async def test_a_key_works_as_x_api_key_and_as_basic_password_for_the_ops_page(
    keyed: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]],
) -> None:
    client, only, _ = keyed
    x_key = {"X-API-Key": only["offers:read"]}
    offers = await client.get("/v1/next-best-offer?user_id=u1", headers=x_key)
    assert offers.status_code == 200
    # A browser opening /ops is asked for credentials, then sends the key as the password.
    asked = await client.get("/ops")
    assert asked.status_code == 401
    assert asked.headers["www-authenticate"].startswith('Basic realm="zmot ops"')
    basic = base64.b64encode(f"ops:{only['ops:read']}".encode()).decode()
    page = await client.get("/ops", headers={"Authorization": f"Basic {basic}"})
    assert page.status_code == 200 and "<html" in page.text.lower()


async def test_a_browser_key_cannot_post_purchases_or_reviews_and_gets_cors_for_its_origin_only(
    isolated: Settings,
    keys_file: Path,
    fake_engine: Engine,
    serve_app: ServeFactory,
    read_topic: Any,
) -> None:
    browser = add_key(
        keys_file,
        "shop-browser",
        ["events:write", "offers:read"],
        origins=["https://shop.example"],
        event_types=["page_view", "search", "add_to_cart", "impression", "click", "dismiss"],
    )
    settings = isolated.model_copy(update={"api_keys_file": keys_file})
    origin = {"Origin": "https://shop.example"}
    async with serve_app(settings, engine=fake_engine) as client:
        for event in (
            {"user_id": "u1", "type": "purchase", "item_id": "tv-1"},
            {"user_id": "u1", "type": "review", "item_id": "tv-1", "rating": 5},
            [VIEW, {"user_id": "u1", "type": "purchase", "item_id": "tv-1"}],
        ):
            refused = await client.post(
                "/v1/events", json=event, headers={**bearer(browser), **origin}
            )
            assert refused.status_code == 403, refused.text
        ok = await client.post("/v1/events", json=VIEW, headers={**bearer(browser), **origin})
        assert ok.status_code == 202
        assert ok.headers["access-control-allow-origin"] == "https://shop.example"
        evil = await client.post(
            "/v1/events", json=VIEW, headers={**bearer(browser), "Origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        assert "access-control-allow-origin" not in evil.headers
        preflight = {"Access-Control-Request-Method": "POST"}
        good = await client.options("/v1/events", headers={**origin, **preflight})
        assert good.status_code == 204
        assert good.headers["access-control-allow-origin"] == "https://shop.example"
        assert "X-API-Key" in good.headers["access-control-allow-headers"]
        bad = await client.options(
            "/v1/events", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in bad.headers
    # Only the one page view reached Kafka.
    assert len(await read_topic(isolated)) == 1


async def test_text_plain_posts_are_415(
    keyed: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]],
) -> None:
    client, only, _ = keyed
    for path, body, key in (
        ("/v1/events", VIEW, only["events:write"]),
        ("/v1/next-best-offer:batch", {"user_ids": ["u1"]}, only["offers:read"]),
    ):
        response = await client.post(
            path,
            content=json.dumps(body),
            headers={**bearer(key), "Content-Type": "text/plain"},
        )
        assert response.status_code == 415, path


async def test_a_created_key_works_and_a_revoked_one_stops_without_a_restart(
    keyed: tuple[httpx.AsyncClient, dict[str, str], dict[str, str]],
    keys_file: Path,
    make_key: Callable[..., str],
) -> None:
    client, _, _ = keyed
    access = client._transport.app.state.access  # type: ignore[attr-defined]
    new = make_key(["offers:read"])
    access.keys.refresh()  # what the next check (every 2 s) does
    nbo = "/v1/next-best-offer?user_id=u"
    assert (await client.get(nbo, headers=bearer(new))).status_code == 200
    name = load_keys(keys_file).keys[-1].name
    revoke_key(keys_file, name)
    access.keys.refresh()
    assert (await client.get(nbo, headers=bearer(new))).status_code == 401


def test_open_on_loopback_warns_and_off_loopback_refuses_unless_allowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="zmot.api"):
        assert access_from_settings(Settings(api_host="127.0.0.1")).open
    assert "ZMOT_API_KEYS_FILE" in caplog.text
    with pytest.raises(ConfigError, match="ZMOT_API_KEYS_FILE"):
        access_from_settings(Settings(api_host="0.0.0.0"))
    with pytest.raises(ConfigError, match="ZMOT_API_KEYS_FILE"):
        create_app(Settings(api_host="10.1.2.3"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zmot.api"):
        assert access_from_settings(Settings(api_host="0.0.0.0", allow_open=True)).open
    assert "WITHOUT API keys" in caplog.text


async def test_a_generic_reasons_key_gets_the_same_offers_without_personal_reasons(
    isolated: Settings,
    keys_file: Path,
    fake_engine: Engine,
    serve_app: ServeFactory,
    put_profile: PutProfile,
) -> None:
    full = add_key(keys_file, "shop-server", ["offers:read"])
    generic = add_key(keys_file, "ad-server", ["offers:read"], reasons="generic")
    await put_profile("u1", profile_of({"q:tv": 1.0}))
    settings = isolated.model_copy(update={"api_keys_file": keys_file})
    nbo = "/v1/next-best-offer?user_id=u1"
    async with serve_app(settings, engine=fake_engine) as client:
        mine = (await client.get(nbo, headers=bearer(full))).json()
        theirs = (await client.get(nbo, headers=bearer(generic))).json()
        german = await client.get(nbo, headers={**bearer(generic), "Accept-Language": "de"})
        batch = await client.post(
            "/v1/next-best-offer:batch", json={"user_ids": ["u1"]}, headers=bearer(generic)
        )
    assert [o["reasons"] for o in mine["offers"]][0] == ["reason 0"]  # the fake's reasons
    assert [o["offer_id"] for o in theirs["offers"]] == [o["offer_id"] for o in mine["offers"]]
    assert {r for o in theirs["offers"] for r in o["reasons"]} == {"picked for you"}
    assert {r for o in german.json()["offers"] for r in o["reasons"]} == {"für Sie ausgewählt"}
    assert {r for o in batch.json()["results"][0]["offers"] for r in o["reasons"]} == {
        "picked for you"
    }
    assert theirs["personalised"] is True
