"""``run_api`` / ``python -m api.server``: a real uvicorn process on a loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recommender.adapters.localstack import free_port
from recommender.core.events import parse_event
from recommender.core.settings import Settings
from tests.api.support import MODEL_VERSION, read_topic
from tests.support.processes import ApiProcess


def test_settings_survive_the_trip_through_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(
        model_dir=tmp_path / "m", redis_prefix="p:", max_k=7, half_life_hours=1.5, catalog_path=None
    )
    for name in list(os.environ):
        if name.startswith("ZMOT_"):
            monkeypatch.delenv(name)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


@pytest.fixture
def server_settings(isolated: Settings, model_files: tuple[Path, Path]) -> Settings:
    model_dir, catalog_path = model_files
    return isolated.model_copy(
        update={"model_dir": model_dir, "catalog_path": catalog_path, "api_port": free_port()}
    )


@pytest.fixture
def server(server_settings: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    api = ApiProcess(server_settings, tmp_path / "api.log")
    try:
        api.wait_ready()
        yield api
    finally:
        api.stop()


@pytest.mark.integration
def test_server_serves_and_stops_cleanly(server: ApiProcess) -> None:
    proc = server.proc
    with httpx.Client(base_url=server.url, timeout=10) as client:
        offers = client.get("/v1/next-best-offer", params={"user_id": "new", "k": 2}).json()
        assert offers["model_version"] == MODEL_VERSION
        assert [o["item_id"] for o in offers["offers"]] == ["boots-1", "tv-1"]
        event = {"user_id": "u1", "type": "search", "query": "tv"}
        assert client.post("/v1/events", json=event).status_code == 202
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=15)
    output = server.log_text()
    assert proc.returncode == 0, output
    assert f"API ready: model {MODEL_VERSION}" in output
    assert "Uvicorn running on http://127.0.0.1:" in output


@pytest.mark.integration
def test_server_refuses_to_start_without_a_model(server_settings: Settings, tmp_path: Path) -> None:
    settings = server_settings.model_copy(update={"model_dir": tmp_path / "nothing-here"})
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        api.proc.wait(timeout=60)
        output = api.log_text()
    finally:
        api.stop()
    assert api.proc.returncode == 3, output
    assert "cannot start the API: no model at" in output
    assert "zmot train" in output


@pytest.mark.integration
async def test_sigterm_under_load_loses_no_accepted_event(
    server: ApiProcess, server_settings: Settings
) -> None:
    """SIGTERM while 8 clients post batches: requests in flight finish, the process exits 0,
    and every event answered 202 is in the topic."""
    accepted: list[str] = []
    errors: list[str] = []
    statuses: list[int] = []

    async def post_until_refused(client: httpx.AsyncClient, worker: int) -> None:
        for number in range(10_000):
            ids = [f"w{worker}-{number}-{i}" for i in range(50)]
            events = [
                {"user_id": f"u{i % 9}", "type": "search", "query": "tv", "event_id": event_id}
                for i, event_id in enumerate(ids)
            ]
            try:
                response = await client.post("/v1/events", json=events)
            except httpx.TransportError as exc:  # the server closed: stop sending
                errors.append(type(exc).__name__)
                return
            statuses.append(response.status_code)
            if response.status_code != 202:
                return
            accepted.extend(ids)

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        senders = [asyncio.create_task(post_until_refused(client, w)) for w in range(8)]
        while len(accepted) < 2000:  # under load before the signal
            assert not all(t.done() for t in senders), (statuses, errors)
            await asyncio.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*senders)
    # uvicorn re-raises the signal after its clean shutdown
    code = await asyncio.to_thread(server.proc.wait, 20)
    log = server.log_text()
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log, log[-3000:]
    assert set(statuses) <= {202, 503}, statuses  # 503: refused while stopping, never a 500
    in_topic = {parse_event(value).event_id for _, value in await read_topic(server_settings)}
    assert set(accepted) <= in_topic
    print(f"{len(accepted)} events accepted before/while stopping, all in the topic; {errors}")  # noqa: T201
