"""The OpenAPI document: every route has an example answer and documents its errors, every
body an example, keyed routes their 401/403/429; and each example is valid for its model."""

from __future__ import annotations

from typing import Any

import pytest

import api.schemas
from api.app import create_app
from api.examples import EVENTS, EXAMPLES
from recommender.core.events import validate_event
from recommender.core.settings import Settings

OPEN = {"/healthz", "/readyz", "/sdk/zmot.js", "/demo/shop"}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings()).openapi()
    return document


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "delete"}
    ]


def has_example(media: dict[str, Any], schemas: dict[str, Any]) -> bool:
    if "example" in media or "examples" in media:
        return True
    schema = media.get("schema", {})
    ref = schema.get("$ref", "")
    if ref:
        return "examples" in schemas[ref.rsplit("/", 1)[-1]]
    return "examples" in schema


def test_every_operation_has_an_example_answer_and_documented_errors(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    missing = []
    for path, method, op in operations(doc):
        responses = op["responses"]
        ok = next(code for code in responses if code.startswith("2"))
        contents = responses[ok].get("content", {})
        if not contents or not all(has_example(m, schemas) for m in contents.values()):
            missing.append(f"{method} {path}: no example of {ok}")
        if path != "/healthz" and not any(code[0] in "45" for code in responses):
            missing.append(f"{method} {path}: no error documented")
        if path not in OPEN and not {"401", "403", "429"} <= set(responses):
            missing.append(f"{method} {path}: key errors not documented")
        body = op.get("requestBody", {}).get("content", {})
        if body and not all(has_example(m, schemas) for m in body.values()):
            missing.append(f"{method} {path}: no example of the body")
    assert missing == []


def test_the_examples_are_valid_for_their_models() -> None:
    for name, example in EXAMPLES.items():
        model = getattr(api.schemas, name)
        assert model.model_validate(example), name
    for event in EVENTS:
        validate_event(event)


def test_the_check_would_notice_a_missing_example() -> None:
    schemas = {"A": {"properties": {}}, "B": {"examples": [{}]}}
    assert not has_example({"schema": {"$ref": "#/components/schemas/A"}}, schemas)
    assert has_example({"schema": {"$ref": "#/components/schemas/B"}}, schemas)
    assert has_example({"example": "x"}, schemas)
