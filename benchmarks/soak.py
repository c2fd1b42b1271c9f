"""Soak: events and offer requests at a steady rate for minutes; is anything growing?

What it does:

1. makes a small demo shop and trains the default model on it (``zmot demo-data``, ``zmot
   train``), on a topic, consumer group and key prefix of its own;
2. starts the stream worker and the API (``python -m api.server``) as subprocesses;
3. for ``--seconds`` (default 600) sends, open loop on a fixed schedule, ``--events`` events/s
   through ``POST /v1/events`` (batches of ``--batch``) and ``--offers`` next-best-offer
   requests/s for random known and new shoppers (each request on its own task: a slow answer
   does not slow the schedule);
4. every ``--every`` seconds records the API's and the worker's RSS, Redis ``used_memory``,
   the worker group's lag (from Kafka), errors (non-2xx or failed requests) and the offer
   latency p50/p99 of that window;
5. prints the table and appends it to ``BENCHMARKS.md`` with the machine, date and command.

Kafka and Redis come from the ``ZMOT_*`` settings (``make bench`` starts the test stack).

    python benchmarks/soak.py [--seconds 600] [--events 1000] [--offers 200] [--no-write]
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
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import (  # noqa: E402
    append_section,
    command_line,
    drop_prefix,
    machine,
    now_utc,
    own_stream,
    read_http_response,
    rss_mib,
    say,
)
from recommender.adapters.kafka import group_lag, total_lag  # noqa: E402
from recommender.adapters.localstack import free_port, stop_child  # noqa: E402
from recommender.adapters.redis_store import connect  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402
from stream.app import datadir_for  # noqa: E402


@dataclass
class Window:
    """What one sampling window saw."""

    sent_events: int = 0
    offers: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


def shop_and_model(work: Path, zmot: str) -> tuple[Path, Path]:
    data, model = work / "shop", work / "model"
    run = {"check": True, "stdout": subprocess.DEVNULL}
    subprocess.run([zmot, "demo-data", "--out", str(data), "--users", "500", "--seed", "3"], **run)  # type: ignore[call-overload]
    say("training the default model on a 500-shopper demo shop ...")
    subprocess.run(
        [zmot, "train", "--events", str(data / "events.jsonl"), "--catalog",
         str(data / "catalog.jsonl"), "--out", str(model), "--epochs", "10"],
        **run,
    )  # type: ignore[call-overload]  # fmt: skip
    return data, model


def some_event(rng: random.Random, items: list[str]) -> dict[str, object]:
    user = f"soak-{rng.randrange(20_000)}"
    if rng.random() < 0.2:
        return {"user_id": user, "type": "search", "query": rng.choice(["tv", "boots", "sofa"])}
    kind = "add_to_cart" if rng.random() < 0.05 else "page_view"
    return {"user_id": user, "type": kind, "item_id": rng.choice(items)}


Request = tuple[bytes, float, Window, bool]
"""(raw HTTP request, scheduled time, its window, is an offer request)."""


async def connection(host: str, port: int, queue: asyncio.Queue[Request | None]) -> None:
    """One keep-alive HTTP/1.1 connection taking requests from the queue (httpx costs this
    generator more CPU than the API spends on a request: it would measure itself)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (item := await queue.get()) is not None:
            request, scheduled, window, is_offer = item
            writer.write(request)
            status, _ = await read_http_response(reader)
            window.errors += status not in (200, 202)
            if is_offer:
                window.latencies.append(time.perf_counter() - scheduled)
    finally:
        writer.close()


async def load(args: argparse.Namespace, api: str, items: list[str], windows: list[Window]) -> None:
    """Open-loop schedule: every 10 ms tick queues what is due since the start; 32 keep-alive
    connections send it. Offer latency counts from the scheduled time, so queueing shows."""
    rng = random.Random(7)
    host, port = api.removeprefix("http://").split(":")
    head = f"Host: {host}:{port}\r\nUser-Agent: zmot-soak\r\n"
    queue: asyncio.Queue[Request | None] = asyncio.Queue()
    workers = [asyncio.create_task(connection(host, int(port), queue)) for _ in range(32)]
    tick, started = 0.01, time.monotonic()
    batches_sent = offers_sent = 0
    while (elapsed := time.monotonic() - started) < args.seconds:
        window = windows[min(int(elapsed // args.every), len(windows) - 1)]
        now = time.perf_counter()
        due_batches = int(elapsed * args.events / args.batch) - batches_sent
        for _ in range(max(0, due_batches)):
            body = json.dumps([some_event(rng, items) for _ in range(args.batch)]).encode()
            request = (
                f"POST /v1/events HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            window.sent_events += args.batch
            queue.put_nowait((request, now, window, False))
        batches_sent += max(0, due_batches)
        due_offers = int(elapsed * args.offers) - offers_sent
        for _ in range(max(0, due_offers)):
            path = f"/v1/next-best-offer?user_id=soak-{rng.randrange(25_000)}&k=3"
            window.offers += 1
            queue.put_nowait((f"GET {path} HTTP/1.1\r\n{head}\r\n".encode(), now, window, True))
        offers_sent += max(0, due_offers)
        await asyncio.sleep(max(0.0, started + elapsed + tick - time.monotonic()))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)


async def sample(
    args: argparse.Namespace,
    settings: Settings,
    pids: dict[str, int],
    windows: list[Window],
    rows: list[dict[str, float]],
) -> None:
    redis = connect(settings.redis_url)
    try:
        for n in range(len(windows)):
            await asyncio.sleep(args.every)
            lag = total_lag(
                await group_lag(
                    settings.kafka_bootstrap, settings.consumer_group, settings.events_topic
                )
            )
            memory = int((await redis.info("memory"))["used_memory"])
            w = windows[n]
            lat = np.array(w.latencies) * 1000 if w.latencies else np.array([np.nan])
            rows.append(
                {
                    "t": (n + 1) * args.every,
                    "api_rss": rss_mib(pids["api"]),
                    "worker_rss": rss_mib(pids["worker"]),
                    "redis_mib": memory / 2**20,
                    "lag": float(lag),
                    "events": w.sent_events / args.every,
                    "offers": w.offers / args.every,
                    "errors": float(w.errors),
                    "p50": float(np.percentile(lat, 50)),
                    "p99": float(np.percentile(lat, 99)),
                }
            )
            r = rows[-1]
            say(
                f"t={r['t']:.0f}s api {r['api_rss']:.0f} MiB worker {r['worker_rss']:.0f} MiB "
                f"redis {r['redis_mib']:.1f} MiB lag {r['lag']:.0f} errors {r['errors']:.0f} "
                f"offers p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms"
            )
    finally:
        await redis.aclose()


async def run(args: argparse.Namespace, work: Path) -> list[dict[str, float]]:
    zmot = str(Path(sys.executable).with_name("zmot"))
    data, model = shop_and_model(work, zmot)
    items = [json.loads(line)["item_id"] for line in (data / "catalog.jsonl").open()]
    settings = own_stream(
        Settings(),
        f"soak-{uuid.uuid4().hex[:8]}",
        api_port=free_port(),
        model_dir=model,
        catalog_path=data / "catalog.jsonl",
        offers_path=data / "offers.jsonl",
    )
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ZMOT_")}}
    env.update(settings.to_env())
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = [(work / f"{n}.log").open("wb") for n in ("worker", "api")]
    try:
        procs["worker"] = subprocess.Popen(
            [zmot, "worker"], cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT
        )
        procs["api"] = subprocess.Popen(
            [sys.executable, "-m", "api.server"],
            cwd=ROOT,
            env=env,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        )
        api = f"http://127.0.0.1:{settings.api_port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or procs["api"].poll() is not None:
                raise RuntimeError((work / "api.log").read_text()[-3000:])
            time.sleep(0.5)
        say(f"soak: {args.events:g} events/s and {args.offers:g} offers/s for {args.seconds:g} s")
        windows = [Window() for _ in range(int(args.seconds // args.every))]
        rows: list[dict[str, float]] = []
        pids = {n: p.pid for n, p in procs.items()}
        await asyncio.gather(
            load(args, api, items, windows), sample(args, settings, pids, windows, rows)
        )
        return rows
    finally:
        for proc in procs.values():
            stop_child(proc, timeout_s=30.0)
        for log in logs:
            log.close()
        shutil.rmtree(datadir_for(settings), ignore_errors=True)
        await drop_prefix(settings.redis_url, settings.redis_prefix)  # its topics stay


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--events", type=float, default=1000.0, help="events per second (POSTed)")
    p.add_argument("--batch", type=int, default=50, help="events per POST")
    p.add_argument("--offers", type=float, default=200.0, help="next-best-offer requests/s")
    p.add_argument("--every", type=float, default=30.0, help="seconds per sample")
    p.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="zmot-soak-") as tmp:
        rows = asyncio.run(run(args, Path(tmp)))
    lines = [
        f"## Soak: {args.events:g} events/s and {args.offers:g} offers/s for "
        f"{args.seconds:g} s ({now_utc()})",
        "",
        f"- command: `{command_line()}`",
        f"- machine: {machine()}",
        "",
        "| t (s) | events/s sent | offers/s | errors | offer p50 / p99 ms | API RSS MiB "
        "| worker RSS MiB | Redis MiB | lag (messages) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['t']:.0f} | {r['events']:,.0f} | {r['offers']:,.0f} | {r['errors']:.0f} "
            f"| {r['p50']:.1f} / {r['p99']:.1f} | {r['api_rss']:.0f} | {r['worker_rss']:.0f} "
            f"| {r['redis_mib']:.1f} | {r['lag']:,.0f} |"
        )
    text = "\n".join(lines)
    say(text)
    if not args.no_write:
        append_section(text)


if __name__ == "__main__":
    main()
