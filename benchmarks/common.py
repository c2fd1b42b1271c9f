"""What every benchmark shares: the machine line, appending a section to BENCHMARKS.md, a minimal
HTTP response reader, a stream (topics, group, prefix) of its own and dropping its keys."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine() -> str:
    """CPU model, CPUs, RAM, OS and Python of this machine, for the record."""
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs (nproc){mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line() -> str:
    """The command that ran this benchmark, as a user would type it."""
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def append_section(text: str) -> None:
    """Append a Markdown section to BENCHMARKS.md (creating it with its title)."""
    new = not BENCHMARKS_MD.exists()
    with BENCHMARKS_MD.open("a", encoding="utf-8") as out:
        if new:
            out.write("# Benchmarks\n\nAppended by the scripts in `benchmarks/`; newest last.\n")
        out.write("\n" + text.rstrip() + "\n")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, from /proc (None when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (nan when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def say(text: str = "") -> None:
    """Progress and results on stdout (benchmarks are scripts, not library code)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def read_http_response(reader: Any) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response on a keep-alive ``asyncio.StreamReader`` (the
    minimal client of the load generators: httpx would cost them more than the server)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return int(head[9:12]), body


def own_stream(base: Any, name: str, **extra: Any) -> Any:
    """``base`` settings with topics, consumer group and Redis prefix of their own (the topics
    created), so a benchmark never reads or writes another run's data."""
    from recommender.adapters.kafka import ensure_topic
    from recommender.adapters.localstack import free_port

    settings = base.model_copy(
        update={
            "events_topic": f"zmot.events.{name}",
            "dlq_topic": f"zmot.events.dlq.{name}",
            "consumer_group": name,
            "redis_prefix": f"zmot:{name}:",
            "worker_web_port": free_port(),
            **extra,
        }
    )
    ensure_topic(settings.kafka_bootstrap, settings.events_topic, settings.topic_partitions)
    ensure_topic(settings.kafka_bootstrap, settings.dlq_topic, 1)
    return settings


async def drop_prefix(redis_url: str, prefix: str) -> int:
    """Delete every Redis key under ``prefix``; how many."""
    from recommender.adapters.redis_store import connect

    client = connect(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        await client.aclose()
