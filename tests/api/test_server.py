"""``run_api`` / ``python -m api.server``: a real uvicorn process on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recommender.core.settings import Settings
from tests.api.support import MODEL_VERSION, free_port

ROOT = Path(__file__).resolve().parents[2]


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


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "api.server"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def server_env(isolated: Settings, model_files: tuple[Path, Path]) -> dict[str, str]:
    model_dir, catalog_path = model_files
    settings = isolated.model_copy(
        update={"model_dir": model_dir, "catalog_path": catalog_path, "api_port": free_port()}
    )
    return settings.to_env()


@pytest.fixture
def server(server_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = _start(server_env)
    url = f"http://127.0.0.1:{server_env['ZMOT_API_PORT']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "API not ready within 30 s"
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.integration
def test_server_serves_and_stops_cleanly(server: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = server
    with httpx.Client(base_url=url, timeout=10) as client:
        offers = client.get("/v1/next-best-offer", params={"user_id": "new", "k": 2}).json()
        assert offers["model_version"] == MODEL_VERSION
        assert [o["item_id"] for o in offers["offers"]] == ["boots-1", "tv-1"]
        event = {"user_id": "u1", "type": "search", "query": "tv"}
        assert client.post("/v1/events", json=event).status_code == 202
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, output
    assert f"API ready: model {MODEL_VERSION}" in output
    assert "Uvicorn running on http://127.0.0.1:" in output


@pytest.mark.integration
def test_server_refuses_to_start_without_a_model(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    proc = _start({**server_env, "ZMOT_MODEL_DIR": str(tmp_path / "nothing-here")})
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, output
    assert "cannot start the API: no model at" in output
    assert "zmot train" in output
