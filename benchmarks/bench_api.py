"""Throughput and latency of ``GET /v1/next-best-offer`` against ``GET /healthz`` in the same run.

What it does:

1. takes a model (``--model-dir`` from ``zmot train``, with ``--catalog`` and optionally
   ``--offers``), or, without one, makes a demo shop with ``zmot demo-data`` and trains a small
   model on it with ``zmot train``;
2. writes ``--profiles`` synthetic profiles (``--features`` features each, drawn from the
   model's feature vocabulary) to Redis under a key prefix of its own;
3. starts the API (``python -m api.server``, one uvicorn process, BLAS pinned to one thread) on
   a free loopback port;
4. from a separate load-generating process, sends a fixed number of requests at a fixed
   concurrency over keep-alive connections, first to ``/healthz`` (the baseline: HTTP, the
   framework and the event loop, nothing of ours), then to ``/v1/next-best-offer`` for random
   known users;
5. prints req/s, p50 and p99 of both and appends them to ``BENCHMARKS.md`` with the machine,
   the date and the command.

The load generator is a minimal HTTP/1.1 client on asyncio streams rather than httpx: on a
two-core machine every cycle it spends is taken from the server, and httpx costs several times
more per request. With two or more CPUs the server is pinned to CPU 0 and the load generator to
CPU 1 (``--no-pin`` turns that off). Absolute figures depend on the machine; the ratio to
``/healthz`` is the number to compare across runs.

Kafka and Redis come from the ``ZMOT_*`` settings (``make bench`` starts the test stack). The
API needs Kafka only to start its producer; no event is sent.

    python benchmarks/bench_api.py [--model-dir DIR --catalog catalog.jsonl [--offers F]]
        [--profiles 10000] [--features 32] [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from api.blas import single_thread_env  # noqa: E402
from benchmarks.common import (  # noqa: E402
    BENCHMARKS_MD,
    append_section,
    machine,
    now_utc,
    read_http_response,
    say,
)
from recommender.adapters.localstack import free_port, stop_child  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402

# --- load generator (runs in its own process) --------------------------------------------------


@dataclass
class Result:
    """What one measured run of one endpoint gave."""

    name: str
    requests: int
    concurrency: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    first_error: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100.0 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def _connection(
    host: str,
    port: int,
    paths: Sequence[str],
    next_index: list[int],
    total: int,
    latencies: list[float],
    errors: list[str],
) -> None:
    """One keep-alive connection sending requests until ``total`` have been taken."""
    reader, writer = await asyncio.open_connection(host, port)
    head_tail = f" HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: zmot-bench\r\n\r\n".encode()
    try:
        while next_index[0] < total:
            index = next_index[0]
            next_index[0] += 1
            request = b"GET " + paths[index % len(paths)].encode() + head_tail
            start = time.perf_counter()
            writer.write(request)
            status, body = await read_http_response(reader)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors.append(f"{status} {body[:200]!r}")
    finally:
        writer.close()


async def _drive(
    host: str, port: int, paths: Sequence[str], total: int, concurrency: int
) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    next_index = [0]
    start = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(host, port, paths, next_index, total, latencies, errors)
            for _ in range(concurrency)
        )
    )
    return time.perf_counter() - start, latencies, errors


def _loadgen(
    name: str,
    host: str,
    port: int,
    paths: Sequence[str],
    total: int,
    warmup: int,
    concurrency: int,
    cpu: int | None,
    out: Any,
) -> None:
    """Process body: warm up, measure, send a Result back through ``out`` (a Pipe end)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    if warmup:
        asyncio.run(_drive(host, port, paths, warmup, concurrency))
    seconds, latencies, errors = asyncio.run(_drive(host, port, paths, total, concurrency))
    ordered = sorted(latencies)
    result = Result(
        name=name,
        requests=len(latencies),
        concurrency=concurrency,
        seconds=seconds,
        errors=len(errors),
        p50_ms=_percentile(ordered, 50) * 1000,
        p90_ms=_percentile(ordered, 90) * 1000,
        p99_ms=_percentile(ordered, 99) * 1000,
        max_ms=ordered[-1] * 1000 if ordered else float("nan"),
        first_error=errors[0] if errors else "",
    )
    out.send(asdict(result))
    out.close()


def measure(
    name: str,
    host: str,
    port: int,
    paths: Sequence[str],
    total: int,
    warmup: int,
    concurrency: int,
    cpu: int | None,
) -> Result:
    """Run the load generator for one endpoint in a fresh process and return its figures."""
    ctx = mp.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_loadgen,
        args=(name, host, port, list(paths), total, warmup, concurrency, cpu, sender),
    )
    proc.start()
    sender.close()
    try:
        data = receiver.recv()
    except EOFError:
        proc.join()
        raise SystemExit(f"load generator for {name} died (exit code {proc.exitcode})") from None
    proc.join()
    return Result(**data)


# --- set-up: model, profiles, server -------------------------------------------------------------


def zmot(*args: str) -> None:
    """Run a ``zmot`` CLI command in a subprocess (as a user would)."""
    cmd = [str(Path(sys.executable).parent / "zmot"), *args]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-3000:]
        raise SystemExit(f"`zmot {' '.join(args)}` failed ({done.returncode}):\n{tail}")


def demo_model(work: Path, users: int, epochs: int) -> tuple[Path, Path, Path]:
    """A demo shop and a model trained on it: (model dir, catalog, offers)."""
    data = work / "shop"
    say(f"no --model-dir: making a demo shop ({users} users) and training a model ...")
    zmot("demo-data", "--out", str(data), "--users", str(users))
    zmot(
        "train",
        "--events", str(data / "events.jsonl"),
        "--catalog", str(data / "catalog.jsonl"),
        "--out", str(work / "model"),
        "--epochs", str(epochs),
    )  # fmt: skip
    return work / "model", data / "catalog.jsonl", data / "offers.jsonl"


def synthetic_profiles(
    feature_names: Sequence[str], n: int, features: int, seed: int, now: float
) -> list[tuple[str, Any]]:
    """``n`` (user_id, Profile) with ``features`` random known features each; the items
    among them were touched in the last day (the newest ``touch_memory`` remembered)."""
    from recommender.core.features import item_weights
    from recommender.core.profile import Profile, ProfileParams

    rng = random.Random(seed)
    per_user = min(features, len(feature_names))
    out = []
    for index in range(n):
        names = rng.sample(feature_names, per_user)
        weights = {name: rng.expovariate(1.0) for name in names}
        touched = {item: now - rng.uniform(0, 86_400) for item, _ in item_weights(weights)}
        newest = sorted(touched, key=touched.__getitem__)[-ProfileParams().touch_memory :]
        profile = Profile(
            weights=weights,
            landmark=now,
            last_ts=now,
            n_events=per_user,
            touched={item: touched[item] for item in newest},
        )
        out.append((f"bench-u{index}", profile))
    return out


async def fill_redis(settings: Settings, profiles: list[tuple[str, Any]]) -> None:
    from recommender.adapters.redis_store import ProfileStore, connect

    client = connect(settings.redis_url)
    try:
        store = ProfileStore(client, settings.redis_prefix, ttl_s=3600.0)
        await store.check()
        for start in range(0, len(profiles), 1000):
            chunk = profiles[start : start + 1000]
            conflicts = await store.put_many((user, None, p) for user, p in chunk)
            if conflicts:
                raise SystemExit(f"profiles already in Redis under {settings.redis_prefix}")
    finally:
        await client.aclose(close_connection_pool=True)


async def clear_redis(settings: Settings) -> int:
    from recommender.adapters.redis_store import connect

    client = connect(settings.redis_url)
    removed = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += await client.unlink(*batch)
                batch.clear()
        if batch:
            removed += await client.unlink(*batch)
    finally:
        await client.aclose(close_connection_pool=True)
    return removed


def tree_pythonpath(tree: Path) -> str:
    """``PYTHONPATH`` of a source tree: the tree, after its own ``zmot_native`` when one was
    built into ``tree/.native`` (``pip install --target .native ./recommender/native``: a
    branch that changes the Rust crate, measured beside a tree that serves the venv's)."""
    native = tree / ".native"
    return f"{native}{os.pathsep}{tree}" if (native / "zmot_native").is_dir() else str(tree)


def start_server(
    settings: Settings,
    log_path: Path,
    cpu: int | None,
    *,
    tree: Path = ROOT,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m api.server`` of ``tree`` (its code first on ``PYTHONPATH``) with ``workers``
    processes, BLAS pinned to one thread, on ``cpu``; returned once ``/readyz`` answers 200."""
    env = {**os.environ, **settings.to_env(), **single_thread_env(), **(env or {})}
    if tree != ROOT:
        env["PYTHONPATH"] = tree_pythonpath(tree)
    cmd = [sys.executable, "-m", "api.server", "--workers", str(workers)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]  # uvicorn's worker processes inherit it
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{settings.api_host}:{settings.api_port}/readyz"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"API exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            stop_server(proc)
            raise SystemExit(f"API not ready within 90 s:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (uvicorn's clean shutdown), SIGKILL after 20 s."""
    stop_child(proc, signal.SIGINT, 20.0)


# --- report -----------------------------------------------------------------------------------


def server_stack() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    parser = "hiredis" if importlib.util.find_spec("hiredis") else "pure-Python"
    return (
        f"1 uvicorn process ({http}, {loop} loop, {parser} Redis parser), access log off, "
        "BLAS pinned to 1 thread"
    )


def table(results: Sequence[Result]) -> list[str]:
    rows = [
        "| endpoint | requests | concurrency | req/s | p50 ms | p90 ms | p99 ms | max ms "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| `{r.name}` | {r.requests} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p90_ms:.2f} | {r.p99_ms:.2f} | {r.max_ms:.1f} | {r.errors} |"
        )
    return rows


def report(results: Sequence[Result], setup: list[str], command: str, write: bool) -> None:
    base, nbo = results[0], results[1]
    summary = (
        f"next-best-offer / healthz: {nbo.rps / base.rps:.2f}x the throughput, "
        f"p50 +{nbo.p50_ms - base.p50_ms:.2f} ms, p99 +{nbo.p99_ms - base.p99_ms:.2f} ms"
    )
    lines = table(results)
    say()
    say("\n".join(lines))
    say(summary)
    for r in results:
        if r.first_error:
            say(f"first error of {r.name}: {r.first_error}")
    if not write:
        return
    stamp = now_utc()
    section = [
        f"## API: next-best-offer vs /healthz ({stamp})",
        "",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        *(f"- {line}" for line in setup),
        "",
        *lines,
        "",
        summary + ".",
        "",
    ]
    append_section("\n".join(section))
    say(f"appended to {BENCHMARKS_MD}")


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, help="model from `zmot train` (default: train one)")
    p.add_argument("--catalog", type=Path, help="catalog.jsonl of that model")
    p.add_argument("--offers", type=Path, help="offers.jsonl (default: one offer per item)")
    p.add_argument("--demo-users", type=int, default=2000, help="shop size when training here")
    p.add_argument("--epochs", type=int, default=10, help="epochs when training here")
    p.add_argument("--profiles", type=int, default=10_000, help="profiles written to Redis")
    p.add_argument("--features", type=int, default=32, help="features per profile")
    p.add_argument("--requests", type=int, default=20_000, help="measured requests per endpoint")
    p.add_argument("--warmup", type=int, default=1_000, help="unmeasured requests first")
    p.add_argument("--concurrency", type=int, default=32, help="open connections")
    p.add_argument("--k", type=int, default=3, help="offers per request")
    p.add_argument(
        "--query",
        default="",
        help="extra query of each next-best-offer request, e.g. 'debug=true&placement=home'",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-pin", action="store_true", help="do not pin server and load generator")
    p.add_argument("--no-write", action="store_true", help=f"do not append to {BENCHMARKS_MD.name}")
    args = p.parse_args(argv)
    if args.model_dir is not None and args.catalog is None:
        p.error("--model-dir needs --catalog")
    if min(args.requests, args.concurrency, args.profiles, args.features, args.k) < 1:
        p.error("--requests, --concurrency, --profiles, --features and --k must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/bench_api.py", *given])
    if os.environ.get("PYTHONPATH"):
        command = f"PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])} {command}"
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    server_cpu, load_cpu = (0, 1) if pin else (None, None)
    base = Settings()
    with tempfile.TemporaryDirectory(prefix="zmot-bench-api-") as tmp:
        work = Path(tmp)
        if args.model_dir is None:
            model_dir, catalog, offers = demo_model(work, args.demo_users, args.epochs)
        else:
            model_dir, catalog, offers = args.model_dir, args.catalog, args.offers

        from recommender.core.model import Model

        model = Model.load(model_dir)
        settings = base.model_copy(
            update={
                "api_host": "127.0.0.1",
                "api_port": free_port(),
                "redis_prefix": f"zmot:bench-api-{os.getpid()}:",
                "model_dir": model_dir,
                "catalog_path": catalog,
                "offers_path": offers,
                "max_k": max(base.max_k, args.k),
            }
        )
        profiles = synthetic_profiles(
            model.feature_names, args.profiles, args.features, args.seed, time.time()
        )
        proc = None
        try:
            asyncio.run(fill_redis(settings, profiles))
            proc = start_server(settings, work / "api.log", server_cpu)
            rng = random.Random(args.seed)
            users = [user for user, _ in profiles]
            nbo_paths = [
                f"/v1/next-best-offer?user_id={rng.choice(users)}&k={args.k}"
                + (f"&{args.query}" if args.query else "")
                for _ in range(min(args.requests, 50_000))
            ]
            sample = httpx.get(f"http://127.0.0.1:{settings.api_port}{nbo_paths[0]}").json()
            if sample.get("fallback") is not False:
                raise SystemExit(f"expected a personalised answer, got {sample}")
            host, port = settings.api_host, settings.api_port
            results = [
                measure(
                    "GET /healthz", host, port, ["/healthz"], args.requests, args.warmup,
                    args.concurrency, load_cpu,
                ),
                measure(
                    "GET /v1/next-best-offer", host, port, nbo_paths, args.requests, args.warmup,
                    args.concurrency, load_cpu,
                ),
            ]  # fmt: skip
        finally:
            if proc is not None:
                stop_server(proc)
            asyncio.run(clear_redis(settings))
        n_offers = (
            len(offers.read_text(encoding="utf-8").splitlines()) if offers else len(model.item_ids)
        )
        setup = [
            "next-best-offer with arbitration on (eligibility, caps, floor, diversity, "
            "calibrated priority, decision log)"
            + (f", query `{args.query}`" if args.query else ""),
            f"server: {server_stack()}"
            + (f"; server on CPU {server_cpu}, load generator on CPU {load_cpu}" if pin else ""),
            "load: one process, keep-alive HTTP/1.1 over asyncio streams, "
            f"{args.warmup} warm-up requests per endpoint",
            f"model {model.version}: {len(model.feature_names)} features, "
            f"{len(model.item_ids)} items, {model.item_vectors.shape[1]} dimensions; "
            f"{n_offers} offers; k={args.k}",
            f"Redis: {args.profiles} profiles x {args.features} features, random users "
            "(Redis and Kafka on the same machine)",
        ]
        report(results, setup, command, write=not args.no_write)


if __name__ == "__main__":
    main()
