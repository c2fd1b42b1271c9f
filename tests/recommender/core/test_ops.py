"""Lag documents and histogram quantiles: exact answers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recommender.core.ops import PartitionOffsets, bucket_delta, histogram_quantile, lag_document


def test_lag_document_counts_uncommitted_messages_and_the_age_of_the_oldest() -> None:
    doc = lag_document(
        "g",
        "t",
        {
            1: PartitionOffsets(end=10, committed=10, beginning=0, oldest_ts=None),
            0: PartitionOffsets(end=100, committed=40, beginning=0, oldest_ts=990.0),
            2: PartitionOffsets(end=50, committed=None, beginning=20, oldest_ts=900.5),
        },
        now=1000.0,
    )
    assert doc == {
        "group": "g",
        "topic": "t",
        "total_lag": 60 + 0 + 30,
        "max_lag_seconds": 99.5,
        "partitions": [
            {"partition": 0, "end_offset": 100, "committed_offset": 40, "lag": 60,
             "lag_seconds": 10.0},
            {"partition": 1, "end_offset": 10, "committed_offset": 10, "lag": 0,
             "lag_seconds": 0.0},
            {"partition": 2, "end_offset": 50, "committed_offset": None, "lag": 30,
             "lag_seconds": 99.5},
        ],
    }  # fmt: skip


def test_no_lag_means_no_age_and_empty_topic_has_zero() -> None:
    caught_up = PartitionOffsets(end=5, committed=5, oldest_ts=1.0)
    assert lag_document("g", "t", {0: caught_up}, now=100.0)["max_lag_seconds"] == 0.0
    assert lag_document("g", "t", {}, now=1.0)["total_lag"] == 0


def test_quantiles_interpolate_inside_buckets_like_promql() -> None:
    buckets = [(0.1, 5.0), (0.5, 10.0), (math.inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.1 + 0.4 * 4.9 / 5)
    assert histogram_quantile(0.99, [(1.0, 1.0), (math.inf, 10.0)]) == 1.0
    assert histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None
    assert bucket_delta([(1.0, 5.0), (math.inf, 9.0)], [(1.0, 2.0), (math.inf, 3.0)]) == [
        (1.0, 3.0),
        (math.inf, 6.0),
    ]


@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=200), st.floats(0.0, 1.0))
def test_quantile_estimate_lies_in_the_bucket_of_the_true_quantile(
    values: list[float], q: float
) -> None:
    bounds = [1.0, 5.0, 10.0, 50.0, 100.0, math.inf]
    buckets = [(b, float(sum(v <= b for v in values))) for b in bounds]
    estimate = histogram_quantile(q, buckets)
    assert estimate is not None
    ordered = sorted(values)
    true = ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
    upper = next(b for b in bounds if true <= b)
    lower = max([0.0] + [b for b in bounds if b < upper])
    assert lower - 1e-9 <= estimate <= upper + 1e-9
