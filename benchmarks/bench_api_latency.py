"""Issue 12's API targets in one run: server time over ``/healthz``, throughput at 16
connections, server-side p99 at a fixed offered rate, and what each API process costs.

For each configuration (a source tree and a model; ``--tree`` and ``--model`` may be given
several times, every tree is run with every model, rounds interleaved):

1. starts the API of that tree (``python -m api.server --workers N``, BLAS pinned to one
   thread, cwd and ``PYTHONPATH`` the tree) on the shared Redis profiles;
2. ``wrk -c1`` on ``/healthz`` and on ``/v1/next-best-offer`` (random known users): p50 of
   each, and their difference, the server time of a next-best-offer above the bare route;
3. ``wrk -c16`` on both: requests/s and their ratio (closed loop);
4. open loop: ``--rate`` next-best-offer requests/s on a fixed schedule for ``--seconds``
   (asyncio, 64 keep-alive connections; a late answer never delays the schedule) and the
   server-side p50/p99 from the app's own ``zmot_http_request_duration_seconds`` histogram
   (scraped before and after; with ``--workers N`` the exposition sums every process's),
   with the client-side p99 counted from the scheduled send time;
5. the API processes' RSS and CPU milliseconds per request of the open-loop phase;
6. first, without an HTTP server: the app of that tree driven by direct ASGI calls in one
   process (``--in-process`` requests, real Redis, no Kafka), its CPU microseconds per
   ``/healthz`` and per next-best-offer (min of three passes): the figure that a busy
   shared machine disturbs least.

With ``--profile DIR`` it also records a py-spy flame graph (SVG, and the collapsed stacks)
of one API process under ``wrk -c16`` load per configuration (py-spy must be on ``PATH`` or
in ``$PYSPY``).

Server on CPU 0, wrk and the open-loop generator on CPU 1 (two or more CPUs). Kafka and Redis
come from the ``ZMOT_*`` settings. Needs ``wrk`` (Debian: ``apt-get install wrk``).

    python benchmarks/bench_api_latency.py [--tree NAME=DIR ...] [--model NAME=DIR ...]
        --catalog catalog.jsonl [--offers offers.jsonl] [--workers 1] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from api.blas import single_thread_env  # noqa: E402
from benchmarks.bench_api import (  # noqa: E402
    clear_redis,
    demo_model,
    fill_redis,
    start_server,
    stop_server,
    synthetic_profiles,
    tree_pythonpath,
)
from benchmarks.common import (  # noqa: E402
    append_section,
    cpu_seconds,
    machine,
    now_utc,
    read_http_response,
    rss_mib,
    say,
)
from recommender.adapters.localstack import free_port  # noqa: E402
from recommender.adapters.metrics import parse_exposition  # noqa: E402
from recommender.core.ops import bucket_delta, histogram_quantile  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402

HISTOGRAM = "zmot_http_request_duration_seconds"
NBO = "/v1/next-best-offer"

WRK_PATHS = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""


@dataclass
class Figures:
    """One configuration's figures in one round."""

    label: str
    round: int
    healthz_c1_p50_ms: float = float("nan")
    nbo_c1_p50_ms: float = float("nan")
    healthz_c16_rps: float = float("nan")
    nbo_c16_rps: float = float("nan")
    open_rate: float = float("nan")
    open_server_p50_ms: float | None = None
    open_server_p99_ms: float | None = None
    open_client_p99_ms: float = float("nan")
    open_errors: int = 0
    rss_mib: list[float] = field(default_factory=list)
    cpu_ms_per_request: float = float("nan")
    asgi_healthz_us: float = float("nan")
    asgi_nbo_us: float = float("nan")

    @property
    def over_healthz_ms(self) -> float:
        return self.nbo_c1_p50_ms - self.healthz_c1_p50_ms

    @property
    def ratio(self) -> float:
        return self.nbo_c16_rps / self.healthz_c16_rps


# --- wrk --------------------------------------------------------------------------------------


def _ms(text: str) -> float:
    """wrk's ``812.00us`` / ``1.20ms`` / ``2.00s`` in milliseconds."""
    number, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(
    url: str, connections: int, seconds: float, script: Path | None, cpu: int | None
) -> tuple[float, float]:
    """(requests/s, p50 ms) of one wrk run; non-2xx answers stop the benchmark."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw errors on {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([0-9.]+[a-z]+)", out).group(1)  # type: ignore[union-attr]
    return rps, _ms(p50)


# --- open loop --------------------------------------------------------------------------------


async def _sender(
    host: str, port: int, queue: asyncio.Queue[tuple[bytes, float] | None], out: list[float]
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while (item := await queue.get()) is not None:
            request, scheduled = item
            writer.write(request)
            status, _ = await read_http_response(reader)
            errors += status != 200
            out.append(time.perf_counter() - scheduled)
    finally:
        writer.close()
    return errors


async def open_loop(
    host: str, port: int, paths: Sequence[str], rate: float, seconds: float
) -> tuple[int, list[float], int]:
    """Send ``rate`` requests/s on a fixed schedule (1 ms ticks) over 64 connections:
    (requests sent, latencies from the scheduled time, errors)."""
    queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    senders = [asyncio.create_task(_sender(host, port, queue, latencies)) for _ in range(64)]
    head = f" HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: zmot-bench\r\n\r\n"
    requests = [f"GET {p}{head}".encode() for p in paths]
    sent = 0
    started = time.perf_counter()
    total = int(rate * seconds)
    while sent < total:
        now = time.perf_counter()
        due = min(total, int((now - started) * rate))
        while sent < due:
            scheduled = started + sent / rate
            queue.put_nowait((requests[sent % len(requests)], scheduled))
            sent += 1
        await asyncio.sleep(0.001)
    for _ in senders:
        queue.put_nowait(None)
    errors = sum(await asyncio.gather(*senders))
    return sent, sorted(latencies), errors


def _nbo_buckets(text: str) -> list[tuple[float, float]]:
    sums: dict[float, float] = {}
    for sample, labels, value in parse_exposition(text).get(HISTOGRAM, []):
        if sample == f"{HISTOGRAM}_bucket" and labels.get("endpoint") == NBO:
            upper = float(labels["le"])
            sums[upper] = sums.get(upper, 0.0) + value
    return sorted(sums.items())


# --- in-process CPU per request --------------------------------------------------------------

ASGI_CPU = """
import asyncio, json, sys, time
from api.app import create_app
from recommender.core.settings import get_settings

class Sink:  # no Kafka: no event is sent
    async def send_many(self, events): pass

app = create_app(get_settings(), producer=Sink())
paths = open(sys.argv[1]).read().split()[: int(sys.argv[2])]

async def call(path):
    route, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": route, "raw_path": route.encode(), "root_path": "",
             "query_string": query.encode(), "headers": [(b"host", b"bench")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    sent = []
    async def receive(): return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message): sent.append(message)
    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent

async def main():
    async with app.router.lifespan_context(app):
        for path in paths[:500]: await call(path)
        out = {}
        for name, batch in (("healthz", ["/healthz"] * len(paths)), ("nbo", paths)):
            best = float("inf")
            for _ in range(3):
                started = time.process_time()
                for path in batch: await call(path)
                best = min(best, (time.process_time() - started) / len(batch))
            out[name] = best
        print(json.dumps(out))

asyncio.run(main())
"""
"""Drives the app of a tree with direct ASGI calls (no HTTP server, no socket to the client):
the app's own CPU per request, the least noisy figure on a shared machine."""


def asgi_cpu_us(
    tree: Path, settings: Settings, model: Path, paths: Path, n: int, cpu: int | None
) -> tuple[float, float]:
    """(healthz, next-best-offer) CPU microseconds per request of ``tree``'s app in-process
    (min of three passes over the first ``n`` request paths of the file ``paths``, real
    Redis)."""
    env = {
        **os.environ,
        **settings.to_env(),
        **single_thread_env(),
        "ZMOT_MODEL_DIR": str(model),
        "PYTHONPATH": tree_pythonpath(tree),
    }
    cmd = [sys.executable, "-c", ASGI_CPU, str(paths), str(n)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"in-process run of {tree} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["healthz"] * 1e6, figures["nbo"] * 1e6


# --- processes --------------------------------------------------------------------------------


def _tree_pids(root: int) -> list[int]:
    """``root`` and its children (uvicorn's worker processes)."""
    pids = [root]
    try:
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        pids.extend(_tree_pids(int(child)))
    return pids


def _cpu_s(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


def start_api(
    tree: Path, settings: Settings, model: Path, workers: int, log: Path, cpu: int | None
) -> subprocess.Popen[bytes]:
    """The API of ``tree`` serving ``model`` with ``workers`` processes, all up."""
    env = {"ZMOT_MODEL_DIR": str(model)}
    proc = start_server(settings, log, cpu, tree=tree, workers=workers, env=env)
    deadline = time.monotonic() + 60
    while workers > 1 and len(_tree_pids(proc.pid)) <= workers:  # /readyz: one is enough
        if time.monotonic() > deadline:
            stop_server(proc)
            raise SystemExit(f"{workers} API processes not up within 60 s")
        time.sleep(0.2)
    return proc


def _pyspy() -> str | None:
    return os.environ.get("PYSPY") or shutil.which("py-spy")


def run_config(
    args: argparse.Namespace,
    label: str,
    tree: Path,
    model: Path,
    settings: Settings,
    paths: Sequence[str],
    work: Path,
    round_no: int,
    cpus: tuple[int | None, int | None],
) -> Figures:
    server_cpu, load_cpu = cpus
    fig = Figures(label, round_no)
    if args.in_process:
        fig.asgi_healthz_us, fig.asgi_nbo_us = asgi_cpu_us(
            tree, settings, model, work / "paths.txt", args.in_process, server_cpu
        )
    proc = start_api(tree, settings, model, args.workers, work / f"{label}.log", server_cpu)
    base = f"http://{settings.api_host}:{settings.api_port}"
    script = work / "paths.lua"
    try:
        sample = httpx.get(base + paths[0]).json()
        if sample.get("fallback") is not False:
            raise SystemExit(f"{label}: expected a personalised answer, got {sample}")
        d = args.wrk_seconds
        wrk(base + "/healthz", 4, 2, None, load_cpu)  # warm-up
        wrk(base + "/", 4, 2, script, load_cpu)
        _, fig.healthz_c1_p50_ms = wrk(base + "/healthz", 1, d, None, load_cpu)
        _, fig.nbo_c1_p50_ms = wrk(base + "/", 1, d, script, load_cpu)
        fig.healthz_c16_rps, _ = wrk(base + "/healthz", 16, d, None, load_cpu)
        fig.nbo_c16_rps, _ = wrk(base + "/", 16, d, script, load_cpu)
        if args.profile is not None and round_no == 1:
            flame(args, label, proc, base, script, load_cpu)
        pids = _tree_pids(proc.pid)
        before = httpx.get(base + "/metrics").text
        cpu0 = _cpu_s(pids)
        if load_cpu is not None:
            os.sched_setaffinity(0, {load_cpu})
        sent, latencies, errors = asyncio.run(
            open_loop(settings.api_host, settings.api_port, paths, args.rate, args.open_seconds)
        )
        cpu1 = _cpu_s(pids)
        fig.open_rate = sent / args.open_seconds
        fig.open_errors = errors
        fig.open_client_p99_ms = latencies[int(0.99 * (len(latencies) - 1))] * 1000
        fig.cpu_ms_per_request = (cpu1 - cpu0) / max(1, sent) * 1000
        delta = bucket_delta(_nbo_buckets(httpx.get(base + "/metrics").text), _nbo_buckets(before))
        p50, p99 = histogram_quantile(0.5, delta), histogram_quantile(0.99, delta)
        fig.open_server_p50_ms = None if p50 is None else p50 * 1000
        fig.open_server_p99_ms = None if p99 is None else p99 * 1000
        api_pids = pids if args.workers == 1 else pids[1:]
        fig.rss_mib = [rss_mib(pid) for pid in api_pids]
    finally:
        stop_server(proc)
    return fig


def flame(
    args: argparse.Namespace,
    label: str,
    proc: subprocess.Popen[bytes],
    base: str,
    script: Path,
    load_cpu: int | None,
) -> None:
    """A py-spy flame graph (and collapsed stacks) of one API process under wrk -c16."""
    pyspy = _pyspy()
    if pyspy is None:
        raise SystemExit("--profile needs py-spy on PATH or in $PYSPY")
    target = _tree_pids(proc.pid)[-1]  # the (first) process that serves
    args.profile.mkdir(parents=True, exist_ok=True)
    for fmt, suffix in (("flamegraph", "svg"), ("raw", "txt")):
        out = args.profile / f"api-{label}.{suffix}"
        spy = subprocess.Popen(
            [pyspy, "record", "-p", str(target), "-f", fmt, "-o", str(out), "-r", "200",
             "-d", str(int(args.wrk_seconds * 2)), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        wrk(base + "/", 16, args.wrk_seconds * 2, script, load_cpu)
        spy.wait(timeout=60)
    say(f"flame graph of {label}: {args.profile / f'api-{label}.svg'}")
    for part, share in where_time_goes(args.profile / f"api-{label}.txt"):
        say(f"  {share:6.1%}  {part}")


# --- where the time goes ----------------------------------------------------------------------

PARTS = (
    ("decision log (logging, uuid, Kafka sends)", ("logging/", "uuid", "DecisionLog", "aiokafka")),
    ("hybrid candidate pass", ("candidate_rows", "HybridScorer.score")),
    ("reasons", ("Explainer.reasons", "lifted_by", "with_ratings", "reasons.py")),
    ("arbitration (rules, priority, slots, model scores)", ("arbitration/", "core/scoring.py")),
    ("Redis client (commands, socket)", ("(redis/", "redis_mux.py", "hiredis")),
    ("profile read and decode", ("privacy_store.py", "codec.py", "core/profile.py")),
    ("ratings cache", ("RatingCache", "_ratings_added")),
    ("answer building and JSON", ("api/schemas.py", "pydantic", "to_json")),
    ("metrics", ("send_status", "observe_answer", "adapters/metrics.py", "prometheus_client")),
    ("FastAPI parameters and dependencies", ("fastapi/dependencies", "solve_dependencies")),
    ("route glue (query, deadline, breaker, experiments)", ("api/routes/offers", "api/breaker")),
)
"""Parts of a request, by the innermost frame of a sample that names one (a function or file
name); the rest is the framework: uvicorn, Starlette, FastAPI routing, middleware, asyncio."""


def where_time_goes(collapsed: Path) -> list[tuple[str, float]]:
    """Share of py-spy's samples (``-f raw``: collapsed stacks) per part of :data:`PARTS`,
    the rest being the framework (uvicorn, Starlette, asyncio, middleware)."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        part = "framework (uvicorn, Starlette, routing, middleware, asyncio)"
        for frame in reversed(stack.split(";")):
            found = next((name for name, keys in PARTS if any(k in frame for k in keys)), None)
            if found is not None:
                part = found
                break
        counts[part] = counts.get(part, 0) + int(n)
    return sorted(((k, v / total) for k, v in counts.items()), key=lambda kv: -kv[1])


# --- report -----------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table(figures: Sequence[Figures]) -> list[str]:
    rows = [
        "| configuration | round | c1 p50 ms: healthz / nbo (over) | c16 req/s: healthz / nbo "
        "(ratio) | open loop req/s | server p50 / p99 ms | client p99 ms | CPU ms/req | RSS MiB "
        "| in-process CPU us/req: healthz / nbo |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        rows.append(
            f"| {f.label} | {f.round} | {f.healthz_c1_p50_ms:.3f} / {f.nbo_c1_p50_ms:.3f} "
            f"(**{f.over_healthz_ms:.3f}**) | {f.healthz_c16_rps:,.0f} / {f.nbo_c16_rps:,.0f} "
            f"(**{f.ratio:.2f}**) | {f.open_rate:,.0f} ({f.open_errors} errors) | "
            f"{_fmt(f.open_server_p50_ms)} / **{_fmt(f.open_server_p99_ms)}** | "
            f"{f.open_client_p99_ms:.1f} | {f.cpu_ms_per_request:.3f} | "
            f"{', '.join(f'{r:.0f}' for r in f.rss_mib)} | "
            f"{f.asgi_healthz_us:.0f} / **{f.asgi_nbo_us:.0f}** |"
        )
    return rows


def _named(values: Sequence[str], what: str) -> list[tuple[str, Path]]:
    out = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--{what} wants NAME=DIR, got {value!r}")
        out.append((name, Path(path).resolve()))
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", action="append", default=[], help="NAME=DIR of a source tree")
    p.add_argument("--model", action="append", default=[], help="NAME=DIR from `zmot train`")
    p.add_argument("--catalog", type=Path, help="catalog.jsonl of the models")
    p.add_argument("--offers", type=Path, help="offers.jsonl (default: one offer per item)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn processes of the API")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--profiles", type=int, default=10_000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--wrk-seconds", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s")
    p.add_argument("--open-seconds", type=float, default=20.0)
    p.add_argument("--profile", type=Path, help="write py-spy flame graphs into this folder")
    p.add_argument(
        "--in-process",
        type=int,
        default=3000,
        help="requests of the in-process CPU measurement (direct ASGI calls; 0: skip)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if args.model and args.catalog is None:
        p.error("--model needs --catalog")
    if shutil.which("wrk") is None:
        p.error("needs wrk on PATH (Debian: apt-get install wrk)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/bench_api_latency.py", *given])
    trees = _named(args.tree, "tree") or [("tree", ROOT)]
    cpus: tuple[int | None, int | None] = (0, 1) if (os.cpu_count() or 1) >= 2 else (None, None)
    base = Settings()
    figures: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="zmot-bench-latency-") as tmp:
        work = Path(tmp)
        if args.model:
            models = _named(args.model, "model")
            catalog = args.catalog.resolve()
            offers = None if args.offers is None else args.offers.resolve()
        else:
            model_dir, catalog, offers = demo_model(work, 2000, 10)
            models = [("default", model_dir)]
        from recommender.core.model import Model

        first = Model.load(models[0][1])
        settings = base.model_copy(
            update={
                "api_host": "127.0.0.1",
                "api_port": free_port(),
                "redis_prefix": f"zmot:bench-latency-{os.getpid()}:",
                "catalog_path": catalog,
                "offers_path": offers,
                "max_k": max(base.max_k, args.k),
            }
        )
        profiles = synthetic_profiles(
            first.feature_names, args.profiles, args.features, args.seed, time.time()
        )
        rng = random.Random(args.seed)
        users = [user for user, _ in profiles]
        paths = [f"{NBO}?user_id={rng.choice(users)}&k={args.k}" for _ in range(20_000)]
        (work / "paths.txt").write_text("\n".join(paths) + "\n")
        (work / "paths.lua").write_text(WRK_PATHS % (work / "paths.txt"))
        try:
            asyncio.run(fill_redis(settings, profiles))
            for round_no in range(1, args.rounds + 1):
                for tree_name, tree in trees:
                    for model_name, model in models:
                        label = f"{tree_name} {model_name}"
                        say(f"=== round {round_no}: {label} {time.strftime('%H:%M:%S')}")
                        fig = run_config(
                            args, label, tree, model, settings, paths, work, round_no, cpus
                        )
                        figures.append(fig)
                        say("\n".join(table([fig])[2:]))
        finally:
            asyncio.run(clear_redis(settings))
    lines = table(figures)
    say("\n".join(lines))
    if args.no_write:
        return
    section = [
        f"## API: issue 12's latency targets ({now_utc()})",
        "",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- trees: {', '.join(f'{n} = {p}' for n, p in trees)}; models: "
        + ", ".join(f"{n} = {p}" for n, p in models),
        f"- {args.workers} uvicorn process(es) on CPU 0, wrk (1 thread) and the open-loop "
        f"generator on CPU 1; {args.profiles} profiles x {args.features} features, k={args.k}",
        f"- c1/c16: wrk {args.wrk_seconds:g} s each; open loop: {args.rate:g} req/s for "
        f"{args.open_seconds:g} s, server p50/p99 from the app's histogram; in-process: "
        f"{args.in_process} direct ASGI calls per endpoint (min of 3 passes)",
        "",
        *lines,
        "",
    ]
    append_section("\n".join(section))


if __name__ == "__main__":
    main()
