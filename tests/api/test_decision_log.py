"""The API logs every decision to the decisions topic, and `zmot ope --from-kafka` joins that
log with the clicks posted through the API (real API process, real broker)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recommender.adapters.kafka import read_topic_values
from recommender.adapters.localstack import free_port
from recommender.core.decision_log import LoggedDecision, decode_record
from recommender.core.errors import ConfigError
from recommender.core.settings import Settings
from tests.api.support import write_model
from tests.support.processes import ApiProcess, run_zmot, running_api, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture
def api(isolated: Settings, tmp_path: Path) -> Iterator[ApiProcess]:
    model_dir, catalog_path = write_model(tmp_path)
    settings = isolated.model_copy(
        update={"model_dir": model_dir, "catalog_path": catalog_path, "api_port": free_port()}
    )
    with running_api(settings, tmp_path / "api.log") as proc:
        yield proc


async def test_every_answer_is_logged_and_ope_reads_the_log_with_the_clicks(
    api: ApiProcess, isolated: Settings, tmp_path: Path
) -> None:
    answers = []
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        for i in range(30):
            r = await client.get("/v1/next-best-offer", params={"user_id": f"u{i}", "k": 2})
            assert r.status_code == 200
            answers.append(r.json())
        batch = await client.post(
            "/v1/next-best-offer:batch", json={"user_ids": ["b1", "b2"], "k": 1}
        )
        assert batch.status_code == 200
        clicked = answers[:10]
        events = [
            {
                "user_id": a["user_id"],
                "type": "click",
                "offer_id": a["offers"][0]["offer_id"],
                "decision_id": a["decision_id"],
            }
            for a in clicked
        ]
        assert (await client.post("/v1/events", json=events)).status_code == 202

    async def logged() -> list[LoggedDecision]:
        values = await read_topic_values(isolated.kafka_bootstrap, isolated.decisions_topic)
        return [d for _, v, _ in values for d in decode_record(v)[0]]

    found: list[LoggedDecision] = []
    for _ in range(50):  # the log is written in the background: wait for it
        try:
            found = await logged()
        except ConfigError:  # the topic is created by the first message
            found = []
        if len(found) == 32:
            break
        await asyncio.sleep(0.2)
    by_id = {d.decision_id: d for d in found}
    assert len(by_id) == 32
    for a in answers:
        entry = by_id[a["decision_id"]]
        assert entry.user_id == a["user_id"] and entry.model_version == a["model_version"]
        assert [s.offer_id for s in entry.offers] == [o["offer_id"] for o in a["offers"]]
        assert [s.probability for s in entry.offers] == pytest.approx(
            [o["probability"] for o in a["offers"]], abs=1e-6
        )

    first = answers[0]["offers"][0]["offer_id"]
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(f"policy: {{{first}: 1.0}}\n")
    done = run_zmot(
        "ope", "--from-kafka", "--candidate", str(candidate), "--json", env=worker_env(isolated)
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n"] == 32
    assert result["logged_rate"] == pytest.approx(10 / 32)


async def test_decisions_still_buffered_at_shutdown_are_sent(
    isolated: Settings, tmp_path: Path
) -> None:
    """A decision log that holds its records a whole second: the API stopped right after the
    last answer still sends every decision before it exits (N answers, N decisions)."""
    model_dir, catalog_path = write_model(tmp_path)
    settings = isolated.model_copy(
        update={
            "model_dir": model_dir,
            "catalog_path": catalog_path,
            "api_port": free_port(),
            "decisions_linger_ms": 1000.0,
        }
    )
    ids: list[str] = []
    with running_api(settings, tmp_path / "api.log") as api:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            for i in range(40):
                r = await client.get("/v1/next-best-offer", params={"user_id": f"s{i}", "k": 2})
                assert r.status_code == 200
                ids.append(r.json()["decision_id"])
            r = await client.post(
                "/v1/next-best-offer:batch", json={"user_ids": ["sb1", "sb2", "sb3"], "k": 1}
            )
            assert r.status_code == 200
            ids.extend(a["decision_id"] for a in r.json()["results"])
    values = await read_topic_values(isolated.kafka_bootstrap, isolated.decisions_topic)
    logged = [d.decision_id for _, v, _ in values for d in decode_record(v)[0]]
    assert sorted(logged) == sorted(ids) and len(ids) == 43
    assert len(values) < 43  # several answers per record
