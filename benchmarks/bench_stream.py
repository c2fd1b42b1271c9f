"""Events per second of the stream worker, against faust's own ceiling in the same run.

What it does:

1. produces ``--events`` browsing events of ``--users`` users (JSON, key = user_id) to a fresh
   topic of its own;
2. reads that topic, each time with a fresh consumer group from offset 0, with
   - the zmot worker (``run_worker`` in a subprocess, real Redis, fresh key prefix) with the
     default intake (``ZMOT_WORKER_INTAKE``), and once more with the other intake (own key
     prefix; ``--default-intake-only`` skips it),
   - a faust agent that only counts raw messages one by one (``async for``),
   - a faust agent that only counts them in ``take_events`` batches like the worker,
   both baselines with the worker's own app configuration (``stream.app.create_app``);
3. in this process, for comparison without faust: a plain aiokafka ``getmany`` loop that only
   counts, and the same loop calling the worker's ``process_batch`` (parse, profile math, one
   Redis read and one write per batch);
4. prints a table and appends it to ``BENCHMARKS.md`` with the machine, date and command.

A subprocess run is timed from its first committed offset to the commit of the last message
(commits every second, so allow a second of slack), and also from spawn to the end (start-up
included); its CPU seconds are those spent in that timed window (read from ``/proc`` at the
first commit and at the end), so "events per CPU-second" leaves start-up out. Kafka and Redis
come from the ``ZMOT_*`` settings; they share the machine with the worker, so absolute figures
depend on it: the ratio to the faust baselines is the number to compare across runs.

``--cprofile FILE`` runs the worker under cProfile (stats saved to FILE, the top printed).

``--scale 1,2,4`` measures scaling instead: for each count N, N worker processes in one fresh
consumer group on a topic of ``--partitions`` partitions (default 8); the workers start on the
empty topic, and once the group is stable (each has its partitions, CPU idle) the events are
produced and the run is timed from the first event sent to the commit of the last; CPU is the
sum over the N processes in that window. Events per worker CPU-second staying flat as N grows
is linear scaling (on this 2-core box the wall rate cannot grow past 2 processes).

    python benchmarks/bench_stream.py [--events 100000] [--users 3000] [--no-write]
    python benchmarks/bench_stream.py --worker-only [--events 300000]  # the worker row only
    python benchmarks/bench_stream.py --scale 1,2,4 [--partitions 8] [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from benchmarks.common import (  # noqa: E402
    BENCHMARKS_MD,
    append_section,
    cpu_seconds,
    machine,
    now_utc,
    say,
)
from recommender.adapters.kafka import committed_offsets, ensure_topic  # noqa: E402
from recommender.adapters.localstack import free_port, stop_child  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402
from stream.app import datadir_for  # noqa: E402

T0_MS = 1_750_000_000_000


@dataclass
class Result:
    """One way of reading the topic."""

    name: str
    events: int
    seconds: float
    total_seconds: float | None = None
    cpu_seconds: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def per_cpu_second(self) -> float:
        """Events per CPU-second of the reader (nan when not measured)."""
        if not self.cpu_seconds:
            return float("nan")
        return self.events / self.cpu_seconds


# --- the events -------------------------------------------------------------------------------


def make_events(n: int, users: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, JSON value) of ``n`` events: views, searches, carts and purchases."""
    rng = random.Random(seed)
    queries = ["fernseher reparatur", "tv repair", "soundbar", "wandhalterung", "oled 55 zoll"]
    kinds = ["page_view"] * 12 + ["search"] * 5 + ["add_to_cart"] * 2 + ["purchase"]
    out = []
    for i in range(n):
        user = f"user-{rng.randrange(users)}"
        kind = rng.choice(kinds)
        event: dict[str, Any] = {"user_id": user, "type": kind, "ts": T0_MS + i * 50}
        if kind == "search":
            event["query"] = rng.choice(queries)
        else:
            event["item_id"] = f"item-{rng.randrange(2000)}"
        out.append((user.encode(), json.dumps(event, separators=(",", ":")).encode()))
    return out


async def produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> float:
    """Produce all messages; the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
        enable_idempotence=True,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [
            await producer.send(settings.events_topic, value, key=key) for key, value in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


# --- Kafka helpers ----------------------------------------------------------------------------


async def partitions(settings: Settings) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([settings.events_topic])
    finally:
        await admin.close()
    return [TopicPartition(settings.events_topic, p["partition"]) for p in described["partitions"]]


async def committed_total(admin: AIOKafkaAdminClient, group: str) -> int:
    offsets = await committed_offsets(admin, group)
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZMOT_")},
        **settings.to_env(),
    }


async def timed_subprocess(
    name: str, settings: Settings, code: str, total: int, log_path: Path, timeout_s: float
) -> Result:
    """Run ``code`` with the settings' environment until its group committed ``total``."""
    settings = settings.model_copy(update={"worker_web_port": free_port()})
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    log = log_path.open("wb")
    spawned = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=settings_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    first_at = first_done = None
    cpu = cpu_at_first = None
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; log: {log_path}")
            if time.perf_counter() - spawned > timeout_s:
                raise RuntimeError(f"{name} not caught up after {timeout_s} s; log: {log_path}")
            done = await committed_total(admin, settings.consumer_group)
            now = time.perf_counter()
            if done and first_at is None:
                first_at, first_done = now, done
                cpu_at_first = cpu_seconds(proc.pid)
            if done >= total:
                cpu = cpu_seconds(proc.pid)
                break
            await asyncio.sleep(0.05)
    finally:
        stop_child(proc, timeout_s=30.0)
        log.close()
        await admin.close()
    assert first_at is not None and first_done is not None
    steady = total - first_done
    window_cpu = None if cpu is None or cpu_at_first is None else cpu - cpu_at_first
    return Result(
        name,
        steady,
        now - first_at,
        total_seconds=now - spawned,
        cpu_seconds=window_cpu,
        note=f"{first_done} events before the first commit not timed",
    )


# --- the runs ---------------------------------------------------------------------------------


def own_names(base: Settings, name: str, **extra: object) -> Settings:
    """``base`` with topics and key prefix of the run ``name`` (and ``extra`` settings)."""
    return base.model_copy(
        update={
            "events_topic": f"zmot.events.{name}",
            "dlq_topic": f"zmot.events.dlq.{name}",
            "redis_prefix": f"zmot:{name}:",
            **extra,
        }
    )


WORKER_CODE = (
    "import sys; sys.path.insert(0, '.'); "
    "from stream.worker import run_worker; from recommender.core.settings import Settings; "
    "run_worker(Settings())"
)


def profiled_worker_code(path: Path) -> str:
    """The worker under cProfile, its stats dumped to ``path`` when it stops."""
    return (
        "import sys, cProfile; sys.path.insert(0, '.'); "
        "from stream.worker import run_worker; from recommender.core.settings import Settings; "
        "profile = cProfile.Profile(); profile.enable()\n"
        "try:\n    run_worker(Settings())\n"
        f"finally:\n    profile.disable(); profile.dump_stats({str(path)!r})"
    )


def profile_summary(path: Path, top: int = 30) -> str:
    """The ``top`` functions of a cProfile dump by own time, as pstats prints them."""
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def count_agent_code(mode: str) -> str:
    return (
        "import sys; sys.path.insert(0, '.'); "
        "from benchmarks.bench_stream import run_count_agent; "
        f"run_count_agent({mode!r})"
    )


def run_count_agent(mode: str) -> None:
    """A faust worker with the zmot app config whose agent only counts raw messages."""
    import faust

    from stream.app import create_app

    settings = Settings()
    app = create_app(settings)
    topic = app.topic(settings.events_topic)
    count = [0]

    if mode == "events":

        async def agent(stream: Any) -> None:
            async for _value in stream:
                count[0] += 1
    else:

        async def agent(stream: Any) -> None:
            async for batch in stream.take_events(
                settings.batch_size, within=settings.batch_timeout_s
            ):
                count[0] += len(batch)

    app.agent(topic, name=f"count.{mode}")(agent)
    faust.Worker(app, loglevel="warning").execute_from_commandline()


async def aiokafka_read(settings: Settings, with_batches: bool) -> Result:
    """Read the topic with a plain consumer; optionally run process_batch on each batch."""
    from recommender.adapters.redis_store import ProfileStore, connect
    from recommender.core.replay import Profiler
    from stream.batch import process_batch
    from stream.dead_letters import DeadLetter
    from stream.records import Record

    tps = await partitions(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    total = sum(ends.values())
    client = connect(settings.redis_url)
    store = ProfileStore(client, settings.redis_prefix, 3600)
    profiler = Profiler()
    letters: list[DeadLetter] = []

    async def sink(batch: Sequence[DeadLetter]) -> None:
        letters.extend(batch)

    seen = 0
    started = time.perf_counter()
    try:
        while seen < total:
            fetched = await consumer.getmany(
                timeout_ms=1000, max_records=settings.batch_size if with_batches else None
            )
            for records in fetched.values():
                seen += len(records)
                if with_batches:
                    batch = [
                        Record(r.topic, r.partition, r.offset, r.timestamp / 1000, r.key, r.value)
                        for r in records
                    ]
                    await process_batch(batch, profiler=profiler, store=store, dead_letter=sink)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
        await client.aclose()
    if letters:
        raise RuntimeError(f"{len(letters)} unexpected dead letters")
    name = "aiokafka getmany + process_batch (Redis)" if with_batches else "aiokafka getmany"
    return Result(name, total, seconds, note="in this process, no faust, no commits")


async def cleanup(settings: Settings, prefixes: Sequence[str]) -> None:
    from recommender.adapters.redis_store import connect

    client = connect(settings.redis_url)
    try:
        for prefix in prefixes:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=5000)]
            for i in range(0, len(keys), 5000):
                await client.delete(*keys[i : i + 5000])
    finally:
        await client.aclose()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([settings.events_topic, settings.dlq_topic])
    finally:
        await admin.close()


# --- scaling: N worker processes in one group ----------------------------------------------


@dataclass
class ScaleResult:
    """N worker processes draining the same events (module docstring, ``--scale``)."""

    workers: int
    events: int
    seconds: float
    cpu: list[float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.events / sum(self.cpu)


async def wait_idle(procs: Sequence[subprocess.Popen[bytes]], at_least_s: float) -> list[float]:
    """Wait until every process has been idle (< 5% of a CPU) for 2 s, after ``at_least_s``;
    their CPU seconds then."""
    started = time.perf_counter()
    last = [cpu_seconds(p.pid) or 0.0 for p in procs]
    quiet = 0
    while True:
        await asyncio.sleep(1.0)
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.pid} exited with {p.returncode}")
        now = [cpu_seconds(p.pid) or 0.0 for p in procs]
        idle = all(b - a < 0.05 for a, b in zip(last, now, strict=True))
        quiet = quiet + 1 if idle else 0
        last = now
        if quiet >= 2 and time.perf_counter() - started >= at_least_s:
            return now
        if time.perf_counter() - started > 120:
            raise RuntimeError("workers did not settle within 120 s")


async def scale_once(
    args: argparse.Namespace,
    base: Settings,
    logs: Path,
    n: int,
    messages: list[tuple[bytes, bytes]],
) -> ScaleResult:
    """One count: a fresh topic, group and key prefix; workers first, then the events."""
    name = f"bench-scale{n}-{uuid.uuid4().hex[:6]}"
    settings = own_names(base, name, consumer_group=name, topic_partitions=args.partitions)
    ensure_topic(settings.kafka_bootstrap, settings.events_topic, args.partitions)
    ensure_topic(settings.kafka_bootstrap, settings.dlq_topic, 1)
    procs: list[subprocess.Popen[bytes]] = []
    handles = []
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        for i in range(n):
            own = settings.model_copy(update={"worker_web_port": free_port()})
            handle = (logs / f"scale-{n}-{i}.log").open("wb")
            handles.append(handle)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", WORKER_CODE],
                    cwd=ROOT,
                    env=settings_env(own),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            )
        before = await wait_idle(procs, at_least_s=8.0 + 2.0 * n)
        started = time.perf_counter()
        await produce(settings, messages)
        while await committed_total(admin, settings.consumer_group) < len(messages):
            if time.perf_counter() - started > args.timeout:
                raise RuntimeError(f"{n} workers not caught up after {args.timeout} s; {logs}")
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"worker {p.pid} exited with {p.returncode}; {logs}")
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        after = [cpu_seconds(p.pid) or 0.0 for p in procs]
    finally:
        for p in procs:
            stop_child(p, timeout_s=30.0)
        for handle in handles:
            handle.close()
        await admin.close()
        shutil.rmtree(datadir_for(settings), ignore_errors=True)
        await cleanup(settings, [settings.redis_prefix])
    return ScaleResult(
        n, len(messages), seconds, [b - a for a, b in zip(before, after, strict=True)]
    )


def scale_table(results: Sequence[ScaleResult]) -> list[str]:
    first = results[0]
    rows = [
        "| worker processes | events | seconds | events/s | CPU s per process "
        "| events per worker CPU-s | vs first row |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        cpu = " / ".join(f"{c:.1f}" for c in r.cpu)
        rows.append(
            f"| {r.workers} | {r.events:,} | {r.seconds:.2f} | {r.rate:,.0f} | {cpu} "
            f"| {r.per_cpu_second:,.0f} | {r.per_cpu_second / first.per_cpu_second:.2f} |"
        )
    return rows


# --- report -----------------------------------------------------------------------------------


def table(results: Sequence[Result]) -> list[str]:
    rows = [
        "| reader | events timed | seconds | events/s | spawn to done s | CPU s (timed) "
        "| events per CPU-s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        total = f"{r.total_seconds:.1f}" if r.total_seconds is not None else "-"
        cpu = f"{r.cpu_seconds:.1f}" if r.cpu_seconds is not None else "-"
        per_cpu = f"{r.per_cpu_second:,.0f}" if r.cpu_seconds else "-"
        rows.append(
            f"| {r.name} | {r.events:,} | {r.seconds:.2f} | {r.rate:,.0f} | {total} | {cpu} "
            f"| {per_cpu} |"
        )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000, help="events produced")
    p.add_argument("--users", type=int, default=3_000, help="distinct users")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600.0, help="per subprocess run, seconds")
    p.add_argument("--no-write", action="store_true", help=f"do not append to {BENCHMARKS_MD.name}")
    p.add_argument(
        "--cprofile", type=Path, default=None, help="run the worker under cProfile, stats to FILE"
    )
    p.add_argument(
        "--scale",
        default=None,
        help="comma-separated worker process counts, e.g. 1,2,4: the scaling run instead",
    )
    p.add_argument("--partitions", type=int, default=8, help="topic partitions of --scale")
    p.add_argument(
        "--default-intake-only",
        action="store_true",
        help="skip the worker run with the other ZMOT_WORKER_INTAKE",
    )
    p.add_argument(
        "--worker-only",
        action="store_true",
        help="only the worker with the default intake: no faust baselines, no aiokafka rows "
        "(before/after comparisons of the worker's own code)",
    )
    args = p.parse_args(argv)
    if args.worker_only:
        args.default_intake_only = True
    if min(args.events, args.users) < 1:
        p.error("--events and --users must be >= 1")
    if args.scale is not None:
        try:
            args.scale = [int(n) for n in args.scale.split(",")]
        except ValueError:
            p.error("--scale takes comma-separated integers, e.g. 1,2,4")
        if not args.scale or min(args.scale) < 1 or args.partitions < max(args.scale):
            p.error("--scale counts must be >= 1 and at most --partitions")
    return args


async def run(args: argparse.Namespace, base: Settings, logs: Path) -> list[Result]:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    settings = own_names(base, name)
    ensure_topic(settings.kafka_bootstrap, settings.events_topic, settings.topic_partitions)
    ensure_topic(settings.kafka_bootstrap, settings.dlq_topic, 1)
    messages = make_events(args.events, args.users, args.seed)
    seconds = await produce(settings, messages)
    say(f"produced {len(messages):,} events in {seconds:.1f} s to {settings.events_topic}")
    results: list[Result] = []
    agent_prefix = f"zmot:{name}-agent:"
    prefixes = [settings.redis_prefix, f"zmot:{name}-direct:", agent_prefix]
    try:
        worker_code = WORKER_CODE if args.cprofile is None else profiled_worker_code(args.cprofile)
        runs: list[tuple[str, str, dict[str, Any]]] = [
            (f"zmot worker (run_worker), {base.worker_intake} intake (default)", worker_code, {}),
            ("faust agent counting raw messages (async for)", count_agent_code("events"), {}),
            ("faust agent counting take_events batches", count_agent_code("take"), {}),
        ]
        if args.worker_only:
            runs = runs[:1]
        if not args.default_intake_only:
            # Its own key prefix: profiles already written would make every event a replay.
            other = "agent" if base.worker_intake == "fetch" else "fetch"
            runs.append(
                (
                    f"zmot worker (run_worker), ZMOT_WORKER_INTAKE={other}",
                    WORKER_CODE,
                    {"worker_intake": other, "redis_prefix": agent_prefix},
                )
            )
        for i, (label, code, extra) in enumerate(runs):
            group = settings.model_copy(update={"consumer_group": f"{name}-{i}", **extra})
            say(f"running: {label} ...")
            result = await timed_subprocess(
                label, group, code, len(messages), logs / f"run-{i}.log", args.timeout
            )
            say(f"  {result.rate:,.0f} events/s")
            results.append(result)
            shutil.rmtree(datadir_for(group), ignore_errors=True)
        for with_batches in () if args.worker_only else (False, True):
            direct = settings.model_copy(update={"redis_prefix": prefixes[1]})
            result = await aiokafka_read(direct, with_batches)
            say(f"{result.name}: {result.rate:,.0f} events/s")
            results.append(result)
    finally:
        await cleanup(settings, prefixes)
    return results


def main_scale(args: argparse.Namespace, command: str, base: Settings) -> None:
    messages = make_events(args.events, args.users, args.seed)

    async def all_counts(logs: Path) -> list[ScaleResult]:
        out = []
        for n in args.scale:
            say(f"{n} worker process(es) on {args.partitions} partitions ...")
            result = await scale_once(args, base, logs, n, messages)
            say(f"  {result.rate:,.0f} events/s, {result.per_cpu_second:,.0f} per worker CPU-s")
            out.append(result)
        return out

    with tempfile.TemporaryDirectory(prefix="zmot-bench-scale-") as tmp:
        results = asyncio.run(all_counts(Path(tmp)))
    rows = scale_table(results)
    say()
    for row in rows:
        say(row)
    if args.no_write:
        return
    section = [
        f"## Stream worker scaling: {now_utc()}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; Kafka broker and Redis on the same machine",
        f"- data: {args.events:,} events of {args.users:,} users, {args.partitions} partitions, "
        f"batch_size {base.batch_size}, profile_pack_level {base.profile_pack_level}, "
        f"worker_profile_cache {base.worker_profile_cache}; workers started on the empty "
        "topic and idle before the "
        "events were produced; timed from the first event sent to the last commit, CPU summed "
        "over the worker processes in that window",
        "",
        *rows,
        "",
    ]
    append_section("\n".join(section))
    say(f"appended to {BENCHMARKS_MD}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/bench_stream.py", *given])
    base = Settings()
    if args.scale is not None:
        main_scale(args, command, base)
        return
    with tempfile.TemporaryDirectory(prefix="zmot-bench-stream-") as tmp:
        results = asyncio.run(run(args, base, Path(tmp)))
    rows = table(results)
    say()
    for row in rows:
        say(row)
    if args.cprofile is not None:
        say(profile_summary(args.cprofile))
    if args.no_write:
        return
    worker = results[0]
    per_event, batched = (None, None) if args.worker_only else (results[1], results[2])
    other = None if args.default_intake_only else results[3]
    section = [
        f"## Stream worker: {now_utc()}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; Kafka broker and Redis on the same machine",
        f"- data: {args.events:,} events of {args.users:,} users, "
        f"{base.topic_partitions} partitions, batch_size {base.batch_size}, "
        f"worker_write_chunk {base.worker_write_chunk}, "
        f"batch_timeout_s {base.batch_timeout_s} (baseline agents), profile_pack_level "
        f"{base.profile_pack_level}, worker_profile_cache {base.worker_profile_cache}; "
        f"worker intake: {base.worker_intake} (ZMOT_WORKER_INTAKE, the default"
        + ("" if other is None else "; the other intake in the same run")
        + ")",
        "- subprocess runs are timed from their first commit to the commit of the last "
        "message (1 s commit interval); the aiokafka rows read in the benchmark process",
        "",
        *rows,
        "",
        (
            "The worker alone (--worker-only: no baselines in this run)"
            if per_event is None or batched is None
            else f"The worker reached {worker.rate / per_event.rate:.0%} of the per-event "
            f"faust baseline and {worker.rate / batched.rate:.0%} of the take_events baseline"
        )
        + (" (under cProfile)" if args.cprofile is not None else "")
        + (
            ""
            if other is None
            else f"; {worker.rate / other.rate:.2f}x the events/s and "
            f"{worker.per_cpu_second / other.per_cpu_second:.2f}x the events per CPU-second "
            "of the other intake"
        )
        + ".",
        "",
    ]
    append_section("\n".join(section))
    say(f"appended to {BENCHMARKS_MD}")


if __name__ == "__main__":
    main()
