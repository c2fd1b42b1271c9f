"""One Redis against a Redis Cluster of 3 masters, on the worker's and the API's Redis paths.

What it does, with no Kafka (the framework's cost is the same in both modes):

1. starts a 3-master cluster on free loopback ports with ``zmot infra``'s own code (or uses
   ``--cluster-url`` naming a node of a running one), beside the single Redis of the
   ``ZMOT_*`` settings (``make bench`` starts the test stack);
2. worker path: the same synthetic batches (``--events`` events of ``--users`` users over 12
   partitions, 500 per batch, with counters and privacy states as the worker runs them)
   through :func:`stream.batch.process_batch`, alternately on the single Redis and on the
   cluster, ``--rounds`` times each, each round under a fresh key prefix;
3. API path: the next-best-offer read of one user (profile, privacy state, links: one
   pipelined round trip), ``--reads`` times per mode, interleaved;
4. measures the single Redis's own CPU (``INFO cpu``, user + system) over each worker round and
   each read round: Redis CPU per event and per read, what SCALING.md sizes shards with;
5. prints events/s and read latency per mode and their ratio, appends them to
   ``BENCHMARKS.md`` with the machine, date and command; deletes its keys, stops its cluster.

    python benchmarks/bench_redis_cluster.py [--events 20000] [--users 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import append_section, command_line, machine, now_utc, say  # noqa: E402
from recommender.adapters.feedback_store import FeedbackStore  # noqa: E402
from recommender.adapters.localstack import paths  # noqa: E402
from recommender.adapters.localstack.redis_cluster import (  # noqa: E402
    down_redis_cluster,
    free_cluster_port,
    up_redis_cluster,
)
from recommender.adapters.privacy_store import PrivacyStore  # noqa: E402
from recommender.adapters.redis_client import client_for, close  # noqa: E402
from recommender.adapters.redis_store import ProfileStore  # noqa: E402
from recommender.core.replay import Profiler  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402
from stream.batch import process_batch  # noqa: E402
from stream.dead_letters import DeadLetter  # noqa: E402
from stream.records import Record  # noqa: E402

PARTITIONS = 12
BATCH = 500


def records(n: int, users: int, seed: int) -> list[Record]:
    """Browsing events of ``users`` users, keyed and partitioned by user as Kafka would."""
    rng = random.Random(seed)
    offsets = [0] * PARTITIONS
    t0 = time.time() - 3600
    out = []
    for i in range(n):
        user = f"u{rng.randrange(users)}"
        partition = hash(user) % PARTITIONS
        kind = rng.choice(["page_view"] * 6 + ["search"] * 2 + ["add_to_cart", "impression"])
        event: dict[str, Any] = {"user_id": user, "type": kind, "ts": (t0 + i * 0.1) * 1000}
        if kind == "search":
            event["query"] = rng.choice(["tv repair", "soundbar", "hdmi kabel", "wanderschuhe"])
        elif kind == "impression":
            event["offer_id"] = f"O{rng.randrange(20)}"
        else:
            event["item_id"] = f"item-{rng.randrange(500)}"
        out.append(
            Record(
                "bench", partition, offsets[partition], t0 + i * 0.1, user.encode(),
                json.dumps(event).encode(),
            )
        )  # fmt: skip
        offsets[partition] += 1
    return out


async def drop(client: Any, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])


async def worker_round(settings: Settings, batches: Sequence[Sequence[Record]]) -> float:
    """Events per second of the batches through the worker's Redis path, fresh prefix."""
    prefix = f"zmot:bench-cl-{uuid.uuid4().hex[:8]}:"
    client = client_for(settings)
    store = ProfileStore(client, prefix, 3600)
    feedback = FeedbackStore(client, prefix, PARTITIONS)
    privacy = PrivacyStore(client, prefix)
    letters: list[DeadLetter] = []

    async def sink(batch: Sequence[DeadLetter]) -> None:
        letters.extend(batch)

    profiler = Profiler()
    try:
        started = time.perf_counter()
        for batch in batches:
            await process_batch(
                batch, profiler=profiler, store=store, dead_letter=sink, feedback=feedback,
                privacy=privacy,
            )  # fmt: skip
        seconds = time.perf_counter() - started
        if letters:
            raise RuntimeError(f"{len(letters)} unexpected dead letters")
        return sum(len(b) for b in batches) / seconds
    finally:
        await drop(client, prefix)
        await close(client)


async def read_round(
    settings: Settings, users: int, reads: int, cpu: list[float] | None = None
) -> list[float]:
    """Latencies (ms) of the next-best-offer read of one user, on stored profiles; with
    ``cpu``, the Redis server's CPU us per read is appended to it."""
    prefix = f"zmot:bench-rd-{uuid.uuid4().hex[:8]}:"
    client = client_for(settings)
    store = ProfileStore(client, prefix, 3600)
    privacy = PrivacyStore(client, prefix)
    try:
        batch = records(users * 5, users, seed=3)
        await process_batch(
            batch, profiler=Profiler(), store=store, dead_letter=_no_letters, privacy=privacy
        )
        rng = random.Random(5)
        out = []
        before = await redis_cpu_s(settings) if cpu is not None else 0.0
        for _ in range(reads):
            user = f"u{rng.randrange(users)}"
            started = time.perf_counter()
            await privacy.served_profiles([user], 72 * 3600.0)
            out.append((time.perf_counter() - started) * 1000)
        if cpu is not None:
            cpu.append((await redis_cpu_s(settings) - before) * 1e6 / reads)
        return out
    finally:
        await drop(client, prefix)
        await close(client)


async def redis_cpu_s(settings: Settings) -> float:
    """CPU seconds (user + system) the Redis server of ``settings`` has used so far."""
    client = client_for(settings)
    try:
        info = await client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        await close(client)


async def _no_letters(letters: Sequence[DeadLetter]) -> None:
    if letters:
        raise RuntimeError(f"{len(letters)} unexpected dead letters")


async def main(args: argparse.Namespace) -> str:
    single = Settings()
    state = Path(tempfile.mkdtemp(prefix="zmot-bench-cluster-"))
    started_cluster = args.cluster_url is None
    if started_cluster:
        url = f"redis://127.0.0.1:{free_cluster_port(3)}/0"
    else:
        url = args.cluster_url
    cluster = single.model_copy(
        update={"redis_url": url, "redis_cluster": True, "state_dir": state}
    )
    if started_cluster:
        up_redis_cluster(cluster, paths(cluster), say, 3)
    try:
        data = records(args.events, args.users, seed=1)
        batches = [data[i : i + BATCH] for i in range(0, len(data), BATCH)]
        rates: dict[str, list[float]] = {"single": [], "cluster": []}
        latencies: dict[str, list[float]] = {"single": [], "cluster": []}
        cpu_event: list[float] = []  # the single Redis's CPU us per event, per round
        cpu_read: list[float] = []  # ... per next-best-offer read
        for number in range(args.rounds):
            for mode, settings in (("single", single), ("cluster", cluster)):
                before = await redis_cpu_s(single) if mode == "single" else 0.0
                rate = await worker_round(settings, batches)
                if mode == "single":
                    cpu_event.append((await redis_cpu_s(single) - before) * 1e6 / args.events)
                rates[mode].append(rate)
                cpu = cpu_read if mode == "single" else None
                latencies[mode].extend(await read_round(settings, 1000, args.reads, cpu))
                say(f"round {number + 1} {mode:7}: {rate:,.0f} events/s")
    finally:
        if started_cluster:
            down_redis_cluster(paths(cluster), say)
    lines = [
        f"## Redis Cluster vs one Redis ({now_utc()})",
        "",
        f"- machine: {machine()}",
        f"- command: `{command_line()}`",
        f"- {args.events} events of {args.users} users, 12 partitions, batches of {BATCH}, "
        "counters and privacy on (the worker's Redis path, no Kafka); a 3-master cluster of "
        "Debian's redis-server on loopback; the modes interleaved, "
        f"{args.rounds} rounds each; reads: the next-best-offer read of one user",
        "",
        "| mode | worker path events/s (median) | rounds | read p50 ms | read p99 ms |",
        "|---|---|---|---|---|",
    ]
    for mode in ("single", "cluster"):
        lat = sorted(latencies[mode])
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        lines.append(
            f"| {mode} | {statistics.median(rates[mode]):,.0f} | "
            f"{', '.join(f'{r:,.0f}' for r in rates[mode])} | "
            f"{statistics.median(lat):.3f} | {p99:.3f} |"
        )
    lines += [
        "",
        f"Redis's own CPU on the single server (INFO cpu, user + system, median of the rounds): "
        f"{statistics.median(cpu_event):.1f} us per event on the worker path "
        f"({', '.join(f'{c:.1f}' for c in cpu_event)}), "
        f"{statistics.median(cpu_read):.1f} us per next-best-offer read "
        f"({', '.join(f'{c:.1f}' for c in cpu_read)}).",
    ]
    ratio = statistics.median(rates["cluster"]) / statistics.median(rates["single"])
    read_ratio = statistics.median(latencies["cluster"]) / statistics.median(latencies["single"])
    lines += [
        "",
        f"Cluster / single: {ratio:.2f}x the events/s on the worker path, {read_ratio:.2f}x the "
        "read time (p50). All nodes share this machine's two cores with the client, so this "
        "is the cost of the cluster client (a pipeline split per node, EVAL with the script "
        "body), not the capacity a cluster of machines adds.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--cluster-url", default=None, help="A node of a running cluster.")
    parser.add_argument("--no-write", action="store_true", help="Do not append BENCHMARKS.md.")
    arguments = parser.parse_args()
    text = asyncio.run(main(arguments))
    say(text)
    if not arguments.no_write:
        append_section(text)
