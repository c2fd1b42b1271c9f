"""``/ops/summary`` reports the feedback counters of the active offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import create_app
from api.monitoring import Ops
from recommender.adapters.feedback_store import FeedbackStore
from recommender.adapters.localstack import free_port
from recommender.adapters.redis_store import connect
from recommender.core.feedback import CounterKey, PartitionUpdate
from recommender.core.settings import Settings
from tests.api.support import serve
from tests.api.test_decisions_route import NullSink

pytestmark = pytest.mark.integration


async def test_summary_has_impressions_clicks_and_dismissals_of_every_offer(
    isolated: Settings, model_files: tuple[Path, Path]
) -> None:
    model_dir, catalog_path = model_files
    settings = isolated.model_copy(update={"model_dir": model_dir, "catalog_path": catalog_path})
    client = connect(settings.redis_url)
    feedback = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
    shown = {CounterKey("impressions", "tv-1"): 3, CounterKey("clicks", "tv-1"): 1}
    more = {CounterKey("impressions", "tv-1"): 1, CounterKey("dismissals", "boots-1"): 2}
    last = settings.topic_partitions - 1
    updates = [PartitionUpdate(0, None, 5, shown), PartitionUpdate(last, None, 9, more)]
    try:
        assert await feedback.apply(updates) == []
        async with serve(create_app(settings, producer=NullSink())) as api:
            offers = (await api.get("/ops/summary")).json()["offers"]
    finally:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    zero = {"impressions": 0, "clicks": 0, "dismissals": 0, "click_rate": None}
    assert offers == {
        "tv-1": {"impressions": 4, "clicks": 1, "dismissals": 0, "click_rate": 0.25},
        "tv-2": zero,
        "boots-1": {**zero, "dismissals": 2},
        "mount-1": zero,
    }


async def test_the_ops_page_shows_an_unreachable_worker_url_without_its_password() -> None:
    url = f"http://scraper:s3cret@127.0.0.1:{free_port()}/metrics"
    families, reason = await Ops(Settings(worker_metrics_url=url)).worker_families()
    assert families is None and reason is not None
    assert "s3cret" not in reason and "scraper:***@127.0.0.1" in reason


async def test_summary_has_each_experiments_arms_with_intervals_and_verdicts(
    isolated: Settings, model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    model_dir, catalog_path = model_files
    path = tmp_path / "experiments.yaml"
    path.write_text(
        "experiments:\n  - name: exp\n    salt: s\n    arms:\n"
        "      - {name: A, share: 0.5}\n      - {name: B, share: 0.5}\n"
    )
    settings = isolated.model_copy(
        update={"model_dir": model_dir, "catalog_path": catalog_path, "experiments_path": path}
    )
    client = connect(settings.redis_url)
    feedback = FeedbackStore(client, settings.redis_prefix, settings.topic_partitions)
    counts = {
        CounterKey("arm_impressions", "exp|A"): 10_000,
        CounterKey("arm_clicks", "exp|A"): 100,
        CounterKey("arm_impressions", "exp|B"): 10_000,
        CounterKey("arm_clicks", "exp|B"): 200,
    }
    try:
        assert await feedback.apply([PartitionUpdate(0, None, 1, counts)]) == []
        async with serve(create_app(settings, producer=NullSink())) as api:
            summary = (await api.get("/ops/summary")).json()
            page = (await api.get("/ops")).text
            metrics = (await api.get("/metrics")).text
    finally:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    [experiment] = summary["experiments"]
    assert experiment["experiment"] == "exp" and experiment["control"] == "A"
    a, b = experiment["arms"]
    assert (a["impressions"], a["clicks"], a["ctr"]) == (10_000, 100, 0.01)
    assert b["ctr"] == 0.02 and b["ctr_95"][0] > a["ctr_95"][1]  # intervals apart
    assert b["verdict_ctr"] == "B better" and "verdict_ctr" not in a
    assert 'id="experiments"' in page and "renderExperiments" in page
    assert 'zmot_experiment_answers_total{arm="B",experiment="exp"} 0.0' in metrics
