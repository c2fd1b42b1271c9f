"""The floor of a next-best-offer on this stack: what its least part costs against ``/healthz``.

Issue 12 asks next-best-offer for >= 0.4x ``/healthz``'s closed-loop throughput at 16
connections and <= 0.35 ms over it at p50 with one connection. This benchmark measures how
much of that budget the part every answer needs takes on its own, with zmot's own code for
each part and nothing else (:mod:`benchmarks.floor_app`): one uvicorn process (httptools,
uvloop, BLAS on one thread) serving

* ``/healthz``: a FastAPI route with a pydantic response model (as the API's);
* ``redis``: a plain route that ``GET``\\ s the user's profile (redis-py asyncio, hiredis);
* ``decode``: the API's profile read instead (``MGET`` + ``EXISTS``, the compact value
  decoded with the shared vocabulary);
* ``score``: that, then LightFM's score of every item for the profile, the ``k`` best and a
  JSON body naming them.

For each, ``wrk -c1`` (p50) and ``wrk -c16`` (requests/s, and the server's CPU time per
request over that run, from ``/proc``) with the server on CPU 0 and wrk on CPU 1, the ratios
to ``/healthz``'s in the same round. On a shared box the CPU per request is the steadier
figure: ``/healthz``'s CPU per request over a route's is the throughput ratio the route would
have with the server's core to itself. ``score``'s ratio is an upper bound for
any next-best-offer in Python on FastAPI + redis-py + numpy: a real answer also applies the
rules, prices and explains the offers and logs the decision.

The profiles are :func:`~benchmarks.bench_api.synthetic_profiles` of the model's features,
written by the worker's store under a key prefix of their own (deleted at the end). Without
``--model-dir`` a demo shop's model is trained first (2,000 shoppers, 10 epochs).

    python benchmarks/bench_api_floor.py [--model-dir DIR] [--profiles 10000] [--features 32]
                                         [--k 3] [--rounds 2] [--wrk-seconds 5] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
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
    server_stack,
    stop_server,
    synthetic_profiles,
)
from benchmarks.bench_api_latency import WRK_PATHS, wrk  # noqa: E402
from benchmarks.common import append_section, cpu_seconds, machine, now_utc, say  # noqa: E402
from recommender.adapters.localstack import free_port  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402

STAGES = ("redis", "decode", "score")


def start_floor(
    settings: Settings, model: Path, k: int, port: int, log: Path, cpu: int | None
) -> subprocess.Popen[bytes]:
    """The floor app (:mod:`benchmarks.floor_app`) on ``port``, returned once it answers."""
    env = {
        **os.environ,
        **single_thread_env(),
        "ZMOT_REDIS_URL": settings.redis_url,
        "ZMOT_REDIS_PREFIX": settings.redis_prefix,
        "FLOOR_MODEL": str(model),
        "FLOOR_K": str(k),
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "benchmarks.floor_app:make_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"floor app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            stop_server(proc)
            raise SystemExit(f"floor app not up within 60 s:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)


Figures = dict[str, tuple[float, float, float]]
"""``{route: (c16 requests/s, c1 p50 ms, server CPU us per request at c16)}``."""


def run_round(
    base: str, scripts: dict[str, Path], seconds: float, load_cpu: int | None, server: int
) -> Figures:
    """The figures of ``/healthz`` and every stage; ``server``: the app's pid (its CPU time)."""
    out: Figures = {}
    wrk(base + "/healthz", 4, 2, None, load_cpu)  # warm-up
    for stage in STAGES:
        wrk(base, 4, 1, scripts[stage], load_cpu)
    for route in ("healthz", *STAGES):
        script = None if route == "healthz" else scripts[route]
        url = base + "/healthz" if route == "healthz" else base
        _, p50 = wrk(url, 1, seconds, script, load_cpu)
        before = cpu_seconds(server) or 0.0
        rps, _ = wrk(url, 16, seconds, script, load_cpu)
        used = (cpu_seconds(server) or 0.0) - before
        out[route] = (rps, p50, used / (rps * seconds) * 1e6)
    return out


def table(rounds: Sequence[Figures]) -> list[str]:
    lines = [
        "| round | route | c1 p50 ms | over `/healthz` ms | c16 req/s | ratio to `/healthz` "
        "| server CPU us per request (c16) | `/healthz`'s CPU / this |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for number, figures in enumerate(rounds, 1):
        health_rps, health_p50, health_cpu = figures["healthz"]
        for route, (rps, p50, cpu) in figures.items():
            name = "`/healthz`" if route == "healthz" else route
            if route == "healthz":
                lines.append(f"| {number} | {name} | {p50:.3f} |  | {rps:,.0f} |  | {cpu:.0f} |  |")
                continue
            lines.append(
                f"| {number} | {name} | {p50:.3f} | {p50 - health_p50:.3f} | {rps:,.0f} | "
                f"**{rps / health_rps:.2f}** | {cpu:.0f} | **{health_cpu / cpu:.2f}** |"
            )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, help="a `zmot train` directory (default: a demo's)")
    p.add_argument("--profiles", type=int, default=10_000)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--wrk-seconds", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        p.error("needs wrk on PATH (Debian: apt-get install wrk)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "benchmarks/bench_api_floor.py", *given])
    cpus: tuple[int | None, int | None] = (0, 1) if (os.cpu_count() or 1) >= 2 else (None, None)
    base = Settings()
    settings = base.model_copy(update={"redis_prefix": f"zmot:bench-floor-{os.getpid()}:"})
    rounds: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="zmot-bench-floor-") as tmp:
        work = Path(tmp)
        model = args.model_dir.resolve() if args.model_dir else demo_model(work, 2000, 10)[0]
        from recommender.core.model import Model

        names = Model.load(model).feature_names
        profiles = synthetic_profiles(names, args.profiles, args.features, args.seed, time.time())
        rng = random.Random(args.seed)
        users = [user for user, _ in profiles]
        scripts: dict[str, Path] = {}
        for stage in STAGES:
            paths = [f"/floor/{stage}?user_id={rng.choice(users)}" for _ in range(20_000)]
            (work / f"{stage}.txt").write_text("\n".join(paths) + "\n")
            scripts[stage] = work / f"{stage}.lua"
            scripts[stage].write_text(WRK_PATHS % (work / f"{stage}.txt"))
        port = free_port()
        try:
            asyncio.run(fill_redis(settings, profiles))
            proc = start_floor(settings, model, args.k, port, work / "floor.log", cpus[0])
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/floor/score?user_id={users[0]}")
                if len(answer.json()["offers"]) != args.k:
                    raise SystemExit(f"the score route did not find {args.k} items: {answer.text}")
                for number in range(1, args.rounds + 1):
                    say(f"=== round {number} {time.strftime('%H:%M:%S')}")
                    rounds.append(
                        run_round(
                            f"http://127.0.0.1:{port}", scripts, args.wrk_seconds, cpus[1], proc.pid
                        )
                    )
                    say("\n".join(table(rounds[-1:])[2:]))
            finally:
                stop_server(proc)
        finally:
            asyncio.run(clear_redis(settings))
    lines = table(rounds)
    say("\n".join(lines))
    if args.no_write:
        return
    section = [
        f"## API: the floor of a next-best-offer on this stack ({now_utc()})",
        "",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- {server_stack()}, on CPU 0; wrk (1 thread) on CPU 1; {args.wrk_seconds:g} s per "
        f"run; {args.profiles} profiles x {args.features} features, k={args.k}; model: "
        f"{'a demo shop of 2,000 shoppers, 10 epochs' if args.model_dir is None else model}",
        "- routes (`benchmarks/floor_app.py`, cumulative): `redis` = GET of the profile; "
        "`decode` = the API's profile read (MGET + EXISTS + compact decode); `score` = that + "
        "LightFM's score of every item, the k best, a JSON body. No rules, calibration, reasons, "
        "decision log, metrics or keys",
        "",
        *lines,
        "",
    ]
    append_section("\n".join(section))


if __name__ == "__main__":
    main()
