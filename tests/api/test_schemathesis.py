"""Schemathesis against the running API's own OpenAPI document (real process, Kafka, Redis).

For every operation a bounded number of requests is generated from the published schema and
sent to ``python -m api.server``; every answer must be free of server errors and match its
documented status codes, content types and response schemas, and every request the document
calls valid must be accepted (so the published request schemas are as strict as the real
validation: a looser events schema makes generated "valid" events fail here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from recommender.adapters.localstack import free_port
from recommender.core.settings import Settings
from tests.support.processes import ApiProcess

pytestmark = pytest.mark.integration

EXAMPLES = 25  # per operation: about a minute for the whole document on this machine


@pytest.fixture
def api(isolated: Settings, model_files: tuple[Path, Path], tmp_path: Path) -> Iterator[str]:
    model_dir, catalog_path = model_files
    update = {"model_dir": model_dir, "catalog_path": catalog_path, "api_port": free_port()}
    server = ApiProcess(isolated.model_copy(update=update), tmp_path / "api.log")
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.stop()


def test_every_operation_keeps_its_documented_contract(api: str) -> None:
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=api, timeout=30)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation is checked
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
