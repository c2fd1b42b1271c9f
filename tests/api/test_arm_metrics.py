"""Attributed per-arm figures on the API's /metrics: the worker's counters in Redis (written by
the batch logic from a scripted stream), scraped as zmot_experiment_*_total{experiment,arm}."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api import monitoring
from recommender.adapters.redis_store import connect
from recommender.core.attribution import ArmFigures
from recommender.core.settings import Settings
from tests.api.support import ServeFactory
from tests.feedback.test_arm_attribution import DECISIONS, EXPECTED, P0, P1, Attribution

pytestmark = pytest.mark.integration

ARM_FIELDS = {
    "zmot_experiment_impressions": "impressions",
    "zmot_experiment_clicks": "clicks",
    "zmot_experiment_dismissals": "dismissals",
    "zmot_experiment_carts": "carts",
    "zmot_experiment_conversions": "conversions",
    "zmot_experiment_revenue": "revenue",
}


def scraped(text: str) -> dict[str, dict[str, float]]:
    """arm -> {attribute: value} of the zmot_experiment_*_total series of experiment exp."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        field = ARM_FIELDS.get(family.name)
        for sample in family.samples if field else []:
            if sample.name.endswith("_total") and sample.labels["experiment"] == "exp":
                out.setdefault(sample.labels["arm"], {})[field] = sample.value
    return out


def expected(figures: list[ArmFigures]) -> dict[str, dict[str, float]]:
    return {
        f.arm: {field: float(getattr(f, field)) for field in ARM_FIELDS.values()} for f in figures
    }


async def test_metrics_export_the_attributed_counters_per_arm(
    isolated: Settings,
    model_files: tuple[Path, Path],
    tmp_path: Path,
    serve_app: ServeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model_dir, catalog_path = model_files
    experiments = tmp_path / "experiments.yaml"
    experiments.write_text(
        "experiments:\n  - name: exp\n    salt: s\n    arms:\n"
        "      - {name: A, share: 0.5}\n      - {name: B, share: 0.5}\n"
    )
    settings = isolated.model_copy(
        update={
            "model_dir": model_dir,
            "catalog_path": catalog_path,
            "experiments_path": experiments,
        }
    )
    client = connect(settings.redis_url)
    attribution = Attribution(client, settings.redis_prefix)
    try:
        await attribution.decisions.put_many(DECISIONS)
        await attribution.batch(P0[:5] + P1[:3])
        partial = await attribution.figures()
        assert partial != EXPECTED
        async with serve_app(settings) as api:
            first = scraped((await api.get("/metrics")).text)
            assert first == expected(partial)
            await attribution.batch(P0[3:] + P1[1:])  # overlapping redelivery, then the rest
            cached = scraped((await api.get("/metrics")).text)
            assert cached == first  # read at most every ARM_REFRESH_S
            monkeypatch.setattr(monitoring, "ARM_REFRESH_S", 0.0)
            assert scraped((await api.get("/metrics")).text) == expected(EXPECTED)
            summary = (await api.get("/ops/summary")).json()
            arms = {a["arm"]: a for a in summary["experiments"][0]["arms"]}
            assert arms["A"]["impressions"] == 3 and arms["B"]["conversions"] == 1
    finally:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
