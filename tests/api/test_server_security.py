"""Security of real API processes: one rate budget per key shared by two uvicorn processes
(through Redis), and the refusal to serve open off loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recommender.adapters.localstack import free_port
from recommender.core.access import add_key
from recommender.core.settings import Settings
from tests.api.support import write_model
from tests.support.processes import ApiProcess, run_zmot, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture
def two_apis(isolated: Settings, tmp_path: Path) -> Iterator[tuple[ApiProcess, ApiProcess, str]]:
    """Two API processes on one keys file and one Redis; a key allowed 3 requests per 300 s."""
    model_dir, catalog_path = write_model(tmp_path)
    keys = tmp_path / "keys.yaml"
    key = add_key(keys, "ad-server", ["offers:read"], reasons="generic", rate=(0.01, 3))
    apis = []
    try:
        for n in range(2):
            settings = isolated.model_copy(
                update={
                    "model_dir": model_dir,
                    "catalog_path": catalog_path,
                    "api_port": free_port(),
                    "api_keys_file": keys,
                }
            )
            apis.append(ApiProcess(settings, tmp_path / f"api-{n}.log"))
        for api in apis:
            api.wait_ready()
        yield apis[0], apis[1], key
    finally:
        for api in apis:
            api.stop()


def test_a_keys_rate_is_shared_by_two_api_processes_and_429_says_when_to_retry(
    two_apis: tuple[ApiProcess, ApiProcess, str],
) -> None:
    first, second, key = two_apis
    headers = {"Authorization": f"Bearer {key}"}
    statuses = []
    for api in (first, second, first, second):
        response = httpx.get(
            f"{api.url}/v1/next-best-offer", params={"user_id": "u1"}, headers=headers, timeout=10
        )
        statuses.append(response.status_code)
    # The window is 300 s long: the fourth request is over the budget however slow the machine.
    assert statuses == [200, 200, 200, 429]
    assert 1 <= int(response.headers["retry-after"]) <= 300
    assert "over its rate" in response.json()["detail"]


def test_the_api_refuses_to_serve_open_off_loopback(stack: Settings) -> None:
    settings = stack.model_copy(update={"api_host": "0.0.0.0", "api_port": free_port()})
    result = run_zmot("api", env=worker_env(settings), timeout_s=60)
    assert result.returncode != 0
    assert "ZMOT_API_KEYS_FILE" in result.stderr
    assert "refusing to serve 0.0.0.0" in result.stderr
