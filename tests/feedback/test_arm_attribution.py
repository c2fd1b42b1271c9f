"""Attribution to experiment arms in the real Redis, driven by the batch logic: a scripted
stream with hand-computed figures, overlapping and repeated redeliveries counting nothing
twice."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from recommender.adapters.decision_store import DecisionStore
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.kafka import EventProducer
from recommender.adapters.redis_store import ProfileStore, connect
from recommender.core.attribution import ArmFigures, DecisionRecord, verdict
from recommender.core.events import parse_event
from recommender.core.replay import Profiler
from recommender.core.settings import Settings
from stream.batch import process_batch
from stream.records import Record
from tests.feedback.test_feedback_store import no_letters, rec
from tests.support.processes import WorkerProcess, run_zmot, worker_env

pytestmark = pytest.mark.integration

T0 = 1_750_000_000.0  # decision time base, epoch seconds
MIN, HOUR = 60.0, 3600.0
WINDOW_S = 24 * HOUR


def at(seconds: float) -> int:
    return int((T0 + seconds) * 1000)


DECISIONS = [
    DecisionRecord("d1", "u1", T0, "exp", "A", {"O1": ("tv-1", 100.0), "O2": ("mount-1", 20.0)}),
    DecisionRecord("d2", "u2", T0, "exp", "B", {"O1": ("tv-1", 100.0)}),
    DecisionRecord("d3", "u3", T0, "exp", "B", {"O3": ("boots-1", 50.0)}),
    DecisionRecord("d4", "u1", T0 + 2 * HOUR, "exp", "A", {"O2": ("mount-1", 25.0)}),
]

P0 = [  # u1
    rec(0, 0, "u1", "impression", at(MIN), offer_id="O1", decision_id="d1"),
    rec(0, 1, "u1", "impression", at(MIN), offer_id="O2", decision_id="d1"),
    rec(0, 2, "u1", "click", at(2 * MIN), offer_id="O1", decision_id="d1"),
    rec(0, 3, "u1", "purchase", at(HOUR), item_id="tv-1"),  # A converts: 100.00
    rec(0, 4, "u1", "impression", at(2 * HOUR + MIN), offer_id="O2", decision_id="d4"),
    rec(0, 5, "u1", "add_to_cart", at(3 * HOUR), item_id="mount-1"),  # A cart (d4: last touch)
    rec(0, 6, "u1", "purchase", at(3 * HOUR), item_id="mount-1"),  # A converts: 25.00 (d4)
    rec(0, 7, "u1", "impression", at(3 * HOUR), offer_id="O1", decision_id="nope"),  # unknown
    rec(0, 8, "u1", "click", at(2 * HOUR + 2 * MIN), offer_id="O2"),  # no id: d4, latest with O2
]
P1 = [  # u2 and u3
    rec(1, 0, "u2", "impression", at(MIN), offer_id="O1", decision_id="d2"),
    rec(1, 1, "u2", "dismiss", at(MIN), offer_id="O1", decision_id="d2"),
    rec(1, 2, "u3", "impression", at(MIN), offer_id="O3", decision_id="d3"),
    rec(1, 3, "u3", "click", at(MIN), offer_id="O3", decision_id="d3"),
    rec(1, 4, "u3", "purchase", at(30 * HOUR), item_id="boots-1"),  # outside the 24 h window
    rec(1, 5, "u2", "purchase", at(5 * HOUR), item_id="tv-1"),  # B converts: 100.00
    rec(1, 6, "u2", "impression", at(MIN), offer_id="O1", decision_id="d1"),  # u1's decision
    rec(1, 7, "u2", "impression", at(MIN), offer_id="O9", decision_id="d2"),  # not offered
    rec(1, 8, "u2", "page_view", at(MIN), item_id="tv-1"),  # nothing to attribute
    rec(1, 9, "u3", "impression", at(25 * HOUR), offer_id="O3"),  # no id; d3 is 25 h old
    rec(1, 10, "u2", "dismiss", at(10 * MIN), offer_id="O1"),  # no id: d2
]

EXPECTED = [
    ArmFigures("A", impressions=3, clicks=2, dismissals=0, carts=1, conversions=2,
               revenue_cents=12_500, revenue_sq_cents=10_000**2 + 2_500**2),
    ArmFigures("B", impressions=2, clicks=1, dismissals=2, carts=0, conversions=1,
               revenue_cents=10_000, revenue_sq_cents=10_000**2),
]  # fmt: skip


class Attribution:
    def __init__(self, client: Any, prefix: str) -> None:
        self.prefix = prefix
        self.profiles = ProfileStore(client, prefix, ttl_s=3600)
        self.feedback = FeedbackStore(client, prefix, 4)
        self.decisions = DecisionStore(client, prefix, WINDOW_S)

    async def batch(self, records: list[Record]) -> None:
        await process_batch(
            records,
            profiler=Profiler(),
            store=self.profiles,
            dead_letter=no_letters,
            feedback=self.feedback,
            decisions=self.decisions,
        )

    async def figures(self) -> list[ArmFigures]:
        return await self.feedback.arm_figures("exp", ["A", "B"])


@pytest.fixture
async def attribution(stack: Settings) -> AsyncIterator[Attribution]:
    client = connect(stack.redis_url)
    prefix = f"zmot:att-{uuid.uuid4().hex[:10]}:"
    yield Attribution(client, prefix)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_scripted_stream_gives_the_hand_computed_figures_once(
    attribution: Attribution,
) -> None:
    await attribution.decisions.put_many(DECISIONS)
    await attribution.batch(P0[:5] + P1[:3])
    # redelivery overlapping the first batch (P0 3-4 and P1 1-2 again), then the rest
    await attribution.batch(P0[3:] + P1[1:])
    assert await attribution.figures() == EXPECTED
    await attribution.batch(P0 + P1)  # the whole stream delivered again
    figures = await attribution.figures()
    assert figures == EXPECTED

    a, b = figures
    assert a.ctr.value == pytest.approx(2 / 3)
    assert a.ctr.interval == pytest.approx((0.20766, 0.93851), abs=1e-5)  # Wilson, z = 1.96
    assert b.ctr.interval == pytest.approx((0.09453, 0.90547), abs=1e-5)
    assert a.conversion_rate.interval == pytest.approx((0.20766, 0.93851), abs=1e-5)
    assert a.revenue == 125.0 and b.revenue == 100.0
    rpi = a.revenue_per_impression
    assert rpi is not None
    # mean 125 / 3; variance (100^2 + 25^2) / 3 - mean^2 = 1805.56; half width 1.96 sqrt(v / 3)
    assert rpi[0] == pytest.approx(41.6667, abs=1e-4)
    assert rpi[1] == pytest.approx((41.6667 - 48.0831, 41.6667 + 48.0831), abs=1e-3)
    assert verdict(a.ctr, b.ctr).startswith("no difference yet, need ~")


async def test_events_of_decisions_never_recorded_count_nothing(
    attribution: Attribution,
) -> None:
    await attribution.batch(P0[:3])
    assert [f.impressions for f in await attribution.figures()] == [0, 0]


async def test_report_command_prints_the_figures_and_verdicts(
    attribution: Attribution, stack: Settings, tmp_path: Path
) -> None:
    await attribution.decisions.put_many(DECISIONS)
    await attribution.batch(P0 + P1)
    path = tmp_path / "experiments.yaml"
    path.write_text(
        "experiments:\n  - name: exp\n    salt: s\n    arms:\n"
        "      - {name: A, share: 0.5}\n      - {name: B, share: 0.5}\n"
    )
    settings = stack.model_copy(
        update={"redis_prefix": attribution.prefix, "experiments_path": path}
    )
    done = run_zmot("experiment", "report", "exp", "--json", env=worker_env(settings))
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["control"] == "A"
    a, b = document["arms"]
    assert (a["impressions"], a["clicks"], a["conversions"], a["revenue"]) == (3, 2, 2, 125.0)
    assert (b["impressions"], b["dismissals"], b["conversions"], b["revenue"]) == (2, 2, 1, 100.0)
    assert b["verdict_ctr"].startswith("no difference yet, need ~")
    table = run_zmot("experiment", "report", "exp", env=worker_env(settings)).stdout
    assert "66.67% [20.77%, 93.85%]" in table and "B: CTR no difference yet" in table
    missing = run_zmot("experiment", "report", "nope", env=worker_env(settings))
    assert missing.returncode == 1 and "no experiment 'nope'" in missing.stderr


async def test_the_running_worker_attributes_what_it_reads_from_kafka(
    isolated: Settings,
    worker: Callable[..., WorkerProcess],
    caught_up: Callable[..., Awaitable[None]],
) -> None:
    """The same script through the broker and a worker process, each message once."""
    client = connect(isolated.redis_url)
    try:
        await DecisionStore(client, isolated.redis_prefix, WINDOW_S).put_many(DECISIONS)
        proc = worker(isolated)
        async with EventProducer(isolated.kafka_bootstrap, isolated.events_topic) as producer:
            await producer.send_many([parse_event(r.value or b"") for r in P0 + P1])
        await caught_up(isolated, proc)
        store = FeedbackStore(client, isolated.redis_prefix, isolated.topic_partitions)
        assert await store.arm_figures("exp", ["A", "B"]) == EXPECTED
    finally:
        keys = [k async for k in client.scan_iter(match=f"{isolated.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
