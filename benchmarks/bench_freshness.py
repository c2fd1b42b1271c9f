"""Freshness under a fixed load: how long from an event's time to its profile written in Redis.

What it does:

1. starts the stream worker (``run_worker`` in a subprocess) on a fresh topic and key prefix,
   and waits until it has applied a warm-up batch;
2. produces ``--rate`` events/s for ``--seconds`` seconds (JSON, key = user_id), each stamped
   with its own creation time as the event ``ts``;
3. waits until the worker has applied all of them and reads the worker's own
   ``zmot_event_freshness_seconds`` histogram from its ``/metrics`` (the difference to the
   reading before the load, so the warm-up is not counted);
4. prints p50/p90/p99 (estimated inside the histogram buckets, as PromQL does) and appends them
   to ``BENCHMARKS.md`` with the machine, date and command.

Freshness includes the producer's linger, the broker, the worker's batch wait
(``ZMOT_BATCH_TIMEOUT_S``) and the Redis write; Kafka and Redis share the machine.

    python benchmarks/bench_freshness.py [--rate 1000] [--seconds 30] [--users 2000] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402

from benchmarks.common import (  # noqa: E402
    append_section,
    command_line,
    machine,
    now_utc,
    own_stream,
    say,
)
from recommender.adapters.localstack import stop_child  # noqa: E402
from recommender.adapters.metrics import counter_value, histogram_buckets, parse_exposition  # noqa: E402
from recommender.core.ops import bucket_delta, histogram_quantile  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402
from stream.app import datadir_for  # noqa: E402

WORKER_CODE = (
    "import sys; sys.path.insert(0, '.'); "
    "from stream.worker import run_worker; from recommender.core.settings import Settings; "
    "run_worker(Settings())"
)
NAME = "zmot_event_freshness_seconds"


def event(rng: random.Random, users: int) -> tuple[bytes, bytes]:
    """One event stamped now (epoch ms)."""
    user = f"user-{rng.randrange(users)}"
    body: dict[str, object] = {"user_id": user, "ts": int(time.time() * 1000)}
    if rng.random() < 0.25:
        body.update(type="search", query=rng.choice(["tv repair", "soundbar", "oled 55"]))
    else:
        body.update(type="page_view", item_id=f"item-{rng.randrange(2000)}")
    return user.encode(), json.dumps(body, separators=(",", ":")).encode()


async def scrape(url: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        response = await client.get(url)
        response.raise_for_status()
    return parse_exposition(response.text)


async def wait_applied(
    url: str, total: float, timeout_s: float, proc: subprocess.Popen[bytes]
) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        try:
            families = await scrape(url)
            if counter_value(families, "zmot_events_applied") >= total:
                return families
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker did not apply {total} events within {timeout_s} s")
        await asyncio.sleep(0.2)


async def produce_at_rate(
    producer: AIOKafkaProducer, topic: str, rate: float, seconds: float, users: int
) -> tuple[int, float]:
    """Produce ``rate`` events/s for ``seconds``, in 10 ms ticks; (events sent, achieved rate)."""
    rng = random.Random(1)
    tick = 0.01
    sent = 0
    started = time.monotonic()
    pending = []
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(rate * min(elapsed + tick, seconds)) - sent
        for _ in range(max(0, due)):
            key, value = event(rng, users)
            pending.append(await producer.send(topic, value, key=key))
        sent += max(0, due)
        await asyncio.sleep(max(0.0, started + (elapsed + tick) - time.monotonic()))
    await asyncio.gather(*pending)
    return sent, sent / (time.monotonic() - started)


async def run(args: argparse.Namespace, base: Settings, logs: Path) -> dict[str, float]:
    settings = own_stream(base, f"bench-fresh-{uuid.uuid4().hex[:8]}")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZMOT_")},
        **settings.to_env(),
    }
    log = (logs / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_CODE], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5, enable_idempotence=True
    )
    await producer.start()
    try:
        warm, _ = await produce_at_rate(producer, settings.events_topic, 200, 1.0, args.users)
        before = await wait_applied(url, warm, 120, proc)
        say(
            f"worker up, {warm} warm-up events applied; "
            f"producing {args.rate:g} ev/s for {args.seconds:g} s"
        )
        sent, achieved = await produce_at_rate(
            producer, settings.events_topic, args.rate, args.seconds, args.users
        )
        after = await wait_applied(url, warm + sent, 300, proc)
    finally:
        await producer.stop()
        stop_child(proc, timeout_s=30.0)
        log.close()
        shutil.rmtree(datadir_for(settings), ignore_errors=True)
    buckets = bucket_delta(histogram_buckets(after, NAME), histogram_buckets(before, NAME))
    samples = {s: v for s, _, v in after[NAME]}
    old = {s: v for s, _, v in before[NAME]}
    count = samples[f"{NAME}_count"] - old[f"{NAME}_count"]
    total = samples[f"{NAME}_sum"] - old[f"{NAME}_sum"]
    out = {"sent": float(sent), "achieved_rate": achieved, "count": count, "mean": total / count}
    for q in (0.5, 0.9, 0.99):
        out[f"p{round(q * 100)}"] = histogram_quantile(q, buckets) or float("nan")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="events per second produced")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to produce")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args(argv)
    base = Settings()
    with tempfile.TemporaryDirectory(prefix="zmot-bench-fresh-") as tmp:
        r = asyncio.run(run(args, base, Path(tmp)))
    rows = [
        "| load | events | applied | p50 | p90 | p99 | mean |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {r['achieved_rate']:,.0f} ev/s for {args.seconds:g} s | {r['sent']:,.0f} | "
        f"{r['count']:,.0f} | {r['p50'] * 1000:,.0f} ms | {r['p90'] * 1000:,.0f} ms | "
        f"{r['p99'] * 1000:,.0f} ms | {r['mean'] * 1000:,.0f} ms |",
    ]
    for row in rows:
        say(row)
    if args.no_write:
        return
    append_section(
        "\n".join(
            [
                f"## Freshness under load: {now_utc()}",
                "",
                f"- command: `{command_line()}`",
                f"- machine: {machine()}; Kafka broker, Redis and the producer on the same machine",
                f"- one worker, {base.topic_partitions} partitions, batch_size {base.batch_size}, "
                f"batch_timeout_s {base.batch_timeout_s}, {args.users:,} users; freshness = "
                "profile written minus event time, from the worker's "
                "`zmot_event_freshness_seconds` histogram (quantiles interpolated in its buckets)",
                "",
                *rows,
                "",
            ]
        )
    )
    say("appended to BENCHMARKS.md")


if __name__ == "__main__":
    main()
