"""The Python client against the real API process, worker, Kafka and Redis; and its models
against the API's own ``/openapi.json``, so the two cannot drift apart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from zmot_client import (
    AsyncClient,
    Client,
    Forbidden,
    OfferAnswer,
    RetryPolicy,
    Unauthorized,
    Unavailable,
)
from zmot_client.models import API_SCHEMAS

from recommender.core.access import add_key
from recommender.core.settings import Settings
from tests.support.processes import ApiProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_proxy_env")]


def wait_personalised(client: Client, user_id: str, timeout_s: float = 60) -> OfferAnswer:
    """The user's offers once the worker has written the profile (polled)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.next_best_offer(user_id, k=2, language="en")
        if answer.personalised:
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)


def test_the_client_sends_events_and_reads_offers_profiles_and_privacy_routes(
    isolated: Settings, worker: Callable[..., Any], api_server: Callable[..., ApiProcess]
) -> None:
    worker(isolated)
    api = api_server(isolated)
    with Client(api.url, timeout=10) as client:
        sent = client.send_events(
            [
                {"user_id": "c-1", "type": "search", "query": "tv"},
                {"user_id": "c-1", "type": "page_view", "item_id": "tv-1"},
                {"user_id": "c-2", "type": "search", "query": "boots"},
            ]
        )
        assert sent == 3
        answer = wait_personalised(client, "c-1")
        assert answer.offers[0].item_id in {"tv-1", "tv-2"}
        assert answer.offers[0].reasons and answer.decision_id
        wait_personalised(client, "c-2")

        [one, two, stranger] = client.next_best_offers(["c-1", "c-2", "nobody"], k=1)
        assert one.offers[0].item_id.startswith("tv-")
        assert two.offers[0].item_id == "boots-1"
        assert stranger.fallback and not stranger.personalised

        profile = client.profile("c-1")
        assert profile is not None and profile.events_applied == 2
        assert any(name.startswith("q:tv") for name in profile.features)
        assert client.profile("nobody") is None

        exported = client.export("c-1")
        assert exported.profile is not None and exported.consent.effective

        refused = client.consent("c-2", False)
        assert refused.profile_deleted and client.profile("c-2") is None

        erased = client.erase("c-1")
        assert erased.profile and erased.features > 0
        assert client.export("c-1").erased_at is not None


def test_the_async_client_does_the_same_with_a_key_and_says_what_is_missing(
    isolated: Settings,
    worker: Callable[..., Any],
    api_server: Callable[..., ApiProcess],
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys.yaml"
    shop = add_key(keys, "shop", ["events:write", "offers:read"])
    worker(isolated)
    api = api_server(isolated, api_keys_file=keys)

    async def run() -> None:
        async with AsyncClient(api.url, api_key=shop, timeout=10) as client:
            assert await client.send_events([{"user_id": "a-1", "type": "search", "query": "tv"}])
            deadline = time.monotonic() + 60
            while not (answer := await client.next_best_offer("a-1", k=1)).personalised:
                assert time.monotonic() < deadline, answer
                await asyncio.sleep(0.2)
            assert answer.offers[0].item_id.startswith("tv-")
            with pytest.raises(Forbidden):  # the key lacks profiles:read
                await client.profile("a-1")
        async with AsyncClient(api.url) as anonymous:
            with pytest.raises(Unauthorized):
                await anonymous.next_best_offer("a-1")

    asyncio.run(run())


def test_a_rate_limited_key_is_retried_after_the_servers_retry_after(
    isolated: Settings, api_server: Callable[..., ApiProcess], tmp_path: Path
) -> None:
    keys = tmp_path / "keys.yaml"
    slow = add_key(keys, "slow", ["offers:read"], rate=(1.0, 1))
    api = api_server(isolated, api_keys_file=keys)
    with Client(api.url, api_key=slow, retry=RetryPolicy(attempts=1)) as once:
        once.next_best_offer("r-1")
        with pytest.raises(Unavailable) as limited:  # the second request within the window
            once.next_best_offer("r-1")
        assert limited.value.status == 429
    with Client(api.url, api_key=slow, retry=RetryPolicy(attempts=5)) as patient:
        for _ in range(3):  # each over the rate at first, answered after waiting Retry-After
            assert patient.next_best_offer("r-1").user_id == "r-1"


# --- the client's models against the served OpenAPI document -----------------------------------


def shape(schema: dict[str, Any], names: dict[str, str]) -> str:
    """A comparable text of a JSON schema's type (refs by API schema name, unions sorted)."""
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        return names.get(ref, ref)
    if "anyOf" in schema:
        return "|".join(sorted(shape(part, names) for part in schema["anyOf"]))
    if "enum" in schema:
        return "enum" + repr(sorted(schema["enum"]))
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array[{shape(schema.get('items', {}), names)}]"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object[{shape(schema['additionalProperties'], names)}]"
    return str(kind)


def fields_of(schema: dict[str, Any], names: dict[str, str]) -> dict[str, tuple[str, bool]]:
    required = set(schema.get("required", []))
    return {
        name: (shape(prop, names), name in required)
        for name, prop in schema.get("properties", {}).items()
    }


def test_the_clients_models_match_the_apis_openapi_document(
    isolated: Settings, api_server: Callable[..., ApiProcess]
) -> None:
    api = api_server(isolated)
    served = httpx.get(f"{api.url}/openapi.json", timeout=10).json()["components"]["schemas"]
    # The client's own model names, mapped to the API's, so a $ref compares by API name.
    names = {model.__name__: api_name for model, api_name in API_SCHEMAS.items()}
    for model, api_name in API_SCHEMAS.items():
        assert api_name in served, f"the API has no schema {api_name}"
        ours = model.model_json_schema(mode="validation", ref_template="{model}")
        ours_defs = ours.pop("$defs", {})
        assert not [d for d in ours_defs if d not in names], ours_defs
        mine = fields_of(ours, names)
        theirs = fields_of(served[api_name], names)
        assert mine.keys() == theirs.keys(), (model.__name__, mine.keys() ^ theirs.keys())
        for field, (kind, required) in theirs.items():
            # The client may tolerate a field the API always sends (a default), never the
            # reverse: what the API may leave out must not be required by the client.
            assert mine[field][0] == kind, (model.__name__, field, mine[field][0], kind)
            assert not (mine[field][1] and not required), (model.__name__, field)


def test_the_drift_check_would_notice_a_changed_field() -> None:
    class Drifted(BaseModel):
        offer_id: int  # the API says string

    names = {"Drifted": "OfferOut"}
    mine = fields_of(Drifted.model_json_schema(), names)
    assert mine["offer_id"][0] == "integer"
    assert shape({"anyOf": [{"type": "string"}, {"type": "null"}]}, names) == "null|string"
    assert shape({"$ref": "#/components/schemas/Drifted"}, names) == "OfferOut"
