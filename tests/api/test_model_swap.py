"""Hot swap of the served model: a real API process under load while the registry's pointer
moves; an incompatible version refused; rollback in one call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from recommender.adapters.localstack import free_port
from recommender.core.model import Model
from recommender.core.profile import ProfileParams
from recommender.core.registry import Registry
from recommender.core.settings import Settings
from tests.support.processes import ApiProcess, running_api

pytestmark = pytest.mark.integration

LOAD_S = 20.0
SWAP_AFTER_S = 5.0
RATE = 250.0  # requests/s asked of the client (bounded: a shared two-core machine)
CONCURRENCY = 8


@dataclass
class Answer:
    started: float
    ended: float
    status: int
    version: str | None


def versions(model_dir: Path, registry: Path) -> tuple[str, str, str]:
    """Register the hand-made model three times: two compatible versions, one whose profile
    math differs; the first is active."""
    base = Model.load(model_dir)
    reg = Registry(registry)
    v1, v2, v3 = "20261130T100000-aaaa1111", "20261130T110000-bbbb2222", "20261130T120000-cc33"
    reg.register(replace(base, version=v1))
    # same features and profile math, other numbers: scores differ, profiles read the same
    reg.register(replace(base, version=v2, item_biases=base.item_biases + 0.5))
    reg.register(replace(base, version=v3, profile_params=ProfileParams(half_life_s=3600.0)))
    reg.activate(v1)
    return v1, v2, v3


@pytest.fixture
def api(
    isolated: Settings, model_files: tuple[Path, Path], tmp_path: Path
) -> Iterator[tuple[ApiProcess, Registry, tuple[str, str, str]]]:
    model_dir, catalog_path = model_files
    registry = tmp_path / "registry"
    names = versions(model_dir, registry)
    settings = isolated.model_copy(
        update={
            "model_dir": registry,
            "catalog_path": catalog_path,
            "api_port": free_port(),
            "model_poll_s": 0.5,
        }
    )
    with running_api(settings, tmp_path / "api.log") as proc:
        yield proc, Registry(registry), names


async def load(url: str, seconds: float, on_tick: dict[float, object]) -> list[Answer]:
    """``RATE`` requests/s for ``seconds`` from ``CONCURRENCY`` tasks; ``on_tick`` maps a time
    offset to a callable run once when the load reaches it."""
    answers: list[Answer] = []
    started = time.monotonic()
    interval = CONCURRENCY / RATE

    async def one(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while (now := time.monotonic()) - started < seconds:
            t0 = time.monotonic()
            try:
                r = await client.get("/v1/next-best-offer", params={"user_id": f"u{n}-{i}"})
                version = r.json().get("model_version") if r.status_code == 200 else None
                answers.append(Answer(t0, time.monotonic(), r.status_code, version))
            except httpx.HTTPError as exc:
                answers.append(Answer(t0, time.monotonic(), 0, repr(exc)))
            i += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - now)))

    async def ticks() -> None:
        for offset, action in sorted(on_tick.items()):
            await asyncio.sleep(max(0.0, started + offset - time.monotonic()))
            action()  # type: ignore[operator]

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        await asyncio.gather(ticks(), *(one(client, n) for n in range(CONCURRENCY)))
    return answers


async def test_swap_under_load_answers_every_request_with_one_of_two_versions(
    api: tuple[ApiProcess, Registry, tuple[str, str, str]],
) -> None:
    proc, registry, (v1, v2, _) = api
    activated: list[float] = []

    def activate() -> None:
        registry.activate(v2)
        activated.append(time.monotonic())

    answers = await load(proc.url, LOAD_S, {SWAP_AFTER_S: activate})
    assert len(answers) > LOAD_S * 20, "the load generator hardly ran"
    assert [a for a in answers if a.status != 200] == []
    assert {a.version for a in answers} == {v1, v2}
    # Before the activation only v1; the first v2 answer comes after it, and once a v2 answer
    # has ended, every request that starts later is answered by v2 (in flight may finish on v1).
    first_v2 = min(a.ended for a in answers if a.version == v2)
    assert all(a.version == v1 for a in answers if a.ended < activated[0])
    late_v1 = [a for a in answers if a.version == v1 and a.started > first_v2]
    assert late_v1 == []
    pickup = first_v2 - activated[0]
    print(f"{len(answers)} answers; v2 first answered {pickup:.2f} s after activate")  # noqa: T201
    ready = httpx.get(f"{proc.url}/readyz").json()
    assert ready["model_version"] == v2 and "model_refused" not in ready


async def test_rollback_is_one_call_and_an_incompatible_version_is_refused(
    api: tuple[ApiProcess, Registry, tuple[str, str, str]],
) -> None:
    proc, registry, (v1, v2, v3) = api
    async with httpx.AsyncClient(base_url=proc.url, timeout=10) as client:
        registry.activate(v2)
        swapped = await client.post("/v1/admin/model")  # now, not at the next poll
        assert swapped.status_code == 200
        assert swapped.json() == {"model_version": v2, "previous": v1}
        assert registry.rollback() == (v2, v1)
        back = await client.post("/v1/admin/model")
        assert back.status_code == 200 and back.json() == {"model_version": v1, "previous": v2}
        offers = await client.get("/v1/next-best-offer", params={"user_id": "x"})
        assert offers.json()["model_version"] == v1

        registry.activate(v3)
        refused = await client.post("/v1/admin/model")
        assert refused.status_code == 409
        assert "profile_params.half_life_s: 259200.0 -> 3600.0" in refused.json()["detail"]
        ready = (await client.get("/readyz")).json()
        assert ready["model_version"] == v1 and v3 in ready["model_refused"]
        offers = await client.get("/v1/next-best-offer", params={"user_id": "x"})
        assert offers.json()["model_version"] == v1
