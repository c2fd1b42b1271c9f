"""`zmot ope` on files as a user writes them: the same estimates as the library, bad lines
refused with their number."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from recommender.adapters.kafka import DecisionLog, EventProducer, topic_message_count
from recommender.core.decision_log import LoggedDecision, LoggedSlot
from recommender.core.ope import Logged, TablePolicy, evaluate
from recommender.core.settings import Settings
from tests.recommender.core.test_ope import logged_sample
from tests.support.processes import run_zmot, worker_env


def test_ope_command_reads_the_files_and_prints_the_estimates(tmp_path: Path) -> None:
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text(
        "\n".join(
            json.dumps({"offer_id": d.offer_id, "probability": d.probability, "reward": d.reward})
            for d in logged_sample(2000, seed=3)
        )
    )
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("policy: {C: 1.0}\n")
    done = run_zmot("ope", "--decisions", str(decisions), "--candidate", str(candidate), "--json")
    assert done.returncode == 0, done.stderr
    expected = evaluate(read_back(decisions), TablePolicy({"C": 1.0})).to_dict()
    assert json.loads(done.stdout) == json.loads(json.dumps(expected))
    decisions.write_text('{"offer_id": "A"}\n')
    bad = run_zmot("ope", "--decisions", str(decisions), "--candidate", str(candidate))
    assert bad.returncode == 1 and "decisions.jsonl:1: not a logged decision" in bad.stderr


def read_back(path: Path) -> list[Logged]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [Logged(r["offer_id"], r["probability"], r["reward"]) for r in rows]


@pytest.mark.integration
async def test_ope_from_kafka_joins_the_decision_log_with_the_clicks(
    isolated: Settings, tmp_path: Path
) -> None:
    """2,000 decisions of a known logging policy on the decisions topic, a click event for
    each rewarded one on the events topic (named by decision id, or by person and offer):
    `--from-kafka` gives the estimates of the same rows read from a file. The first 700 are
    records as written before batching (one decision per record, keyed by user), the other
    1,300 come through the API's writer (several decisions per record, no key)."""
    sample = logged_sample(2000, seed=5)
    now = time.time() - 3600
    decisions, clicks = [], []
    for i, row in enumerate(sample):
        user = f"user-{i}"
        slot = LoggedSlot(row.offer_id, f"item-{row.offer_id}", "explore", row.probability)
        decisions.append(LoggedDecision(f"d{i}", user, now + i, (slot,)))
        if row.reward:
            named = {"decision_id": f"d{i}"} if i % 2 else {}
            click = {"user_id": user, "type": "click", "offer_id": row.offer_id, **named}
            clicks.append((user, {**click, "ts": int((now + i + 30) * 1000)}))
    old, batched = decisions[:700], decisions[700:]
    producer = AIOKafkaProducer(bootstrap_servers=isolated.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for d in old[:-1]:  # records written before batching: one decision each, user key
            await producer.send(isolated.decisions_topic, d.to_json(), key=d.user_id.encode())
        bad = b'{"decision_id": "no-user"}'  # a bad line is skipped, its record's others kept
        await producer.send(isolated.decisions_topic, old[-1].to_json() + b"\n" + bad)
        for user, click in clicks:
            await producer.send(
                isolated.events_topic, json.dumps(click).encode(), key=user.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()
    lost: list[int] = []
    async with EventProducer(isolated.kafka_bootstrap, isolated.events_topic) as api_producer:
        log = DecisionLog(api_producer, isolated.decisions_topic, lost.append, linger_ms=20)
        at = 0
        while at < len(batched):  # the API's writer: answers of 1 to 7 decisions
            size = 1 + at % 7
            log.write(batched[at : at + size])
            at += size
            await asyncio.sleep(0)
        await log.drain()
    assert lost == []
    records = await topic_message_count(isolated.kafka_bootstrap, isolated.decisions_topic)
    assert 700 < records <= 700 + 1300 // 50  # the 1,300 came in a few records
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text("policy: {A: 0.2, B: 0.2, C: 0.6}\n")
    env = worker_env(isolated)
    done = run_zmot("ope", "--from-kafka", "--candidate", str(candidate), "--json", env=env)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    want = evaluate(sample, TablePolicy({"A": 0.2, "B": 0.2, "C": 0.6})).to_dict()
    assert got["n"] == want["n"] == 2000
    assert got["logged_rate"] == pytest.approx(want["logged_rate"], rel=1e-12)
    for key in ("ips", "snips"):
        assert got[key] == pytest.approx(want[key], rel=1e-9)
    assert f"read 2000 decisions from {isolated.decisions_topic} (1 bad skipped" in done.stderr
    assert "line 2: not a logged decision" in done.stderr
    conversions = run_zmot(
        "ope", "--from-kafka", "--reward", "conversion", "--candidate", str(candidate), env=env
    )
    assert conversions.returncode == 0 and "logged rate 0.0000" in conversions.stdout
    both = run_zmot("ope", "--from-kafka", "--decisions", "x", "--candidate", str(candidate))
    assert (
        both.returncode == 1 and "exactly one of --decisions FILE and --from-kafka" in both.stderr
    )
