"""Consumer lag and histogram quantiles for operators: pure functions over numbers from Kafka.

The Kafka reads are in :mod:`recommender.adapters.kafka`; this module turns what they return into
the lag document that ``zmot lag --json``, ``GET /ops/lag`` and the worker's gauges share, and
estimates quantiles from Prometheus histogram buckets for the ops page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PartitionOffsets:
    """What Kafka says about one partition for one consumer group.

    ``committed`` is None when the group never committed the partition: then its whole log,
    from ``beginning``, is lag. ``oldest_ts`` is the record timestamp (epoch seconds) of the
    first message the group has not processed, None when there is none (or it is unreadable).
    """

    end: int
    committed: int | None
    beginning: int = 0
    oldest_ts: float | None = None


def partition_lag(offsets: PartitionOffsets, now: float) -> dict[str, Any]:
    """One partition's entry of the lag document.

    Lag in messages is ``end - committed``; a never-committed partition starts from its
    beginning offset (records deleted by retention are not lag: nobody can read them). Lag in
    seconds is the age of the oldest unprocessed record, 0 when nothing is waiting, so it grows
    with the wall clock while a worker is down.
    """
    start = offsets.committed if offsets.committed is not None else offsets.beginning
    start = max(start, offsets.beginning)
    lag = max(0, offsets.end - start)
    seconds = 0.0
    if lag and offsets.oldest_ts is not None:
        seconds = max(0.0, now - offsets.oldest_ts)
    return {
        "end_offset": offsets.end,
        "committed_offset": offsets.committed,
        "lag": lag,
        "lag_seconds": round(seconds, 3),
    }


def lag_document(
    group: str, topic: str, partitions: Mapping[int, PartitionOffsets], now: float
) -> dict[str, Any]:
    """``{"group", "topic", "total_lag", "max_lag_seconds", "partitions": [...]}``, by partition."""
    rows = [{"partition": p, **partition_lag(partitions[p], now)} for p in sorted(partitions)]
    return {
        "group": group,
        "topic": topic,
        "total_lag": sum(int(row["lag"]) for row in rows),
        "max_lag_seconds": max((float(row["lag_seconds"]) for row in rows), default=0.0),
        "partitions": rows,
    }


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Estimate the ``q`` quantile from cumulative ``(upper bound, count)`` buckets.

    The same estimate as PromQL's ``histogram_quantile``: linear inside the bucket that holds
    the rank, the lowest bucket starting at 0, and the upper bound of the highest finite bucket
    when the rank falls in ``+Inf``. None when there are no observations.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank and count > below:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = (upper if not math.isinf(upper) else lower), count
    return lower


def bucket_delta(
    now: Iterable[tuple[float, float]], before: Iterable[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Cumulative buckets of the observations made between two snapshots of one histogram."""
    old = dict(before)
    return [(upper, count - old.get(upper, 0.0)) for upper, count in now]
