"""What every benchmark shares: the machine line and appending a section to BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

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


def say(text: str = "") -> None:
    """Progress and results on stdout (benchmarks are scripts, not library code)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
