"""``zmot api --workers N``: several uvicorn processes on one port stay one service. One
``/metrics`` counts what all of them answered; a changed offer file and a newly activated model
reach every process by themselves (each watches the files and the registry pointer), not only
the one an admin call happened to reach."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from recommender.adapters.localstack import free_port
from recommender.core.model import Model
from recommender.core.registry import Registry
from recommender.core.settings import Settings
from tests.support.processes import ApiProcess

pytestmark = pytest.mark.integration

WORKERS = 2
POLL_S = 0.5
V1, V2 = "20261130T100000-aaaa1111", "20261130T110000-bbbb2222"


def write_offers(path: Path, items: list[str]) -> None:
    lines = [{"offer_id": f"off-{item}", "item_id": item, "value": 10.0} for item in items]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


@pytest.fixture
def api(
    isolated: Settings, model_files: tuple[Path, Path], tmp_path: Path
) -> Iterator[tuple[str, Path, Registry]]:
    """``python -m api.server --workers 2`` on a registry (v1 active, v2 compatible) and an
    offer file; (base URL, offer file, registry)."""
    model_dir, catalog_path = model_files
    base = Model.load(model_dir)
    registry = Registry(tmp_path / "registry")
    registry.register(replace(base, version=V1))
    registry.register(replace(base, version=V2, item_biases=base.item_biases + 0.5))
    registry.activate(V1)
    offers = tmp_path / "offers.jsonl"
    write_offers(offers, ["tv-1", "tv-2", "boots-1"])
    settings = isolated.model_copy(
        update={
            "model_dir": tmp_path / "registry",
            "catalog_path": catalog_path,
            "offers_path": offers,
            "api_port": free_port(),
            "model_poll_s": POLL_S,
        }
    )
    proc = ApiProcess(settings, tmp_path / "api.log", ("--workers", str(WORKERS)))
    try:
        proc.wait_ready(timeout_s=60)
        yield proc.url, offers, registry
    finally:
        proc.stop()
        print(proc.log_text()[-5000:])  # noqa: T201  (shown when the test failed)


def fresh(url: str, path: str) -> httpx.Response:
    """One request on a new connection (so the kernel may hand it to any process)."""
    with httpx.Client(timeout=10) as client:
        return client.get(f"{url}{path}", headers={"Connection": "close"})


def series(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of ``name`` in a Prometheus exposition."""
    out = []
    for match in re.finditer(r"^" + re.escape(name) + r"\{([^}]*)\} (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        out.append((labels, float(match.group(2))))
    return out


def until_all(url: str, check: Callable[[dict[str, object]], bool], seconds: float) -> float:
    """Seconds until 40 answers of /readyz in a row, on fresh connections, pass ``check``."""
    started = time.monotonic()
    streak = 0
    while streak < 40:
        assert time.monotonic() - started < seconds, fresh(url, "/readyz").json()
        streak = streak + 1 if check(fresh(url, "/readyz").json()) else 0
    return time.monotonic() - started


def test_every_process_follows_a_changed_offer_file_and_an_activated_model(
    api: tuple[str, Path, Registry],
) -> None:
    url, offers, registry = api
    before = fresh(url, "/readyz").json()
    assert before["model_version"] == V1
    # one exposition for the processes: every scrape, whichever process answers it, sums
    # the requests of all and names each live process's model
    for _ in range(30):
        assert fresh(url, "/v1/next-best-offer?user_id=nobody&k=1").status_code == 200
    for _ in range(5):
        text = fresh(url, "/metrics").text
        answered = series(text, "zmot_http_requests_total")
        assert sum(v for lab, v in answered if lab["endpoint"] == "/v1/next-best-offer") == 30
        live = {lab["pid"] for lab, v in series(text, "zmot_model_info") if v == 1}
        assert len(live) == WORKERS, text

    # a broken offer file is refused by every process: the old offers keep serving
    offers.write_text('{"offer_id": "broken"\n', encoding="utf-8")
    time.sleep(4 * POLL_S)
    for _ in range(10):
        assert fresh(url, "/readyz").json()["catalog_version"] == before["catalog_version"]
    # a changed offer file, and no admin call: every process picks it up by itself
    write_offers(offers, ["tv-1", "mount-1"])
    until_all(url, lambda body: body["catalog_version"] != before["catalog_version"], 20)
    body = fresh(url, "/v1/next-best-offer?user_id=nobody&k=3").json()
    assert {o["offer_id"] for o in body["offers"]} <= {"off-tv-1", "off-mount-1"}, body

    # a newly activated model, again without an admin call
    registry.activate(V2)
    until_all(url, lambda body: body["model_version"] == V2, 20)
