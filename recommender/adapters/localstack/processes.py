"""Processes of the local stack: pid files and whose process a pid is, stopping, starting
detached, and the lock that serialises ``zmot infra`` commands on one state dir."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from recommender.adapters.localstack.paths import Paths
from recommender.core.errors import InfraError

Log = Callable[[str], None]


def read_pid(pidfile: Path) -> int | None:
    """The pid written in ``pidfile``, or None when there is none."""
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> str | None:
    """The command line of ``pid``, or None when it is gone (or not ours to read)."""
    proc = Path("/proc") / str(pid) / "cmdline"
    if Path("/proc/self").exists():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
    try:  # no procfs (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which only waits for its parent to reap it, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def owned_pid(pidfile: Path, *markers: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive and its command line holds every
    marker (so a recycled pid of an unrelated process is never taken for ours)."""
    pid = read_pid(pidfile)
    if pid is None or not alive(pid):
        return None
    line = cmdline(pid)
    if line is None or not all(marker in line for marker in markers):
        return None
    return pid


def stop_pid(pid: int, timeout_s: float) -> bool:
    """SIGTERM ``pid`` and wait; SIGKILL it after ``timeout_s``. True if it had to be killed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
            return True
        time.sleep(0.05)
    return False


def stop_child(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout_s: float = 20.0
) -> bool:
    """Send ``sig`` to a child process and reap it; SIGKILL it after ``timeout_s``. True if it
    had to be killed (a child that already exited is only reaped)."""
    if proc.poll() is not None:
        return False
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True
    return False


# A tiny launcher run by a second Python: it starts the service in a new session and exits at
# once, so the service is re-parented to init and never becomes a zombie of a long-lived
# caller (a test session), and no Popen object of ours outlives the call.
_SPAWN = """\
import subprocess, sys
out = open(sys.argv[1], "wb")
proc = subprocess.Popen(sys.argv[3:], cwd=sys.argv[2], stdin=subprocess.DEVNULL, stdout=out,
                        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
print(proc.pid)
"""


def spawn_detached(cmd: list[str], cwd: Path, output: Path) -> int:
    """Start ``cmd`` fully detached (new session, output to ``output``); return its pid."""
    result = subprocess.run(
        [sys.executable, "-c", _SPAWN, str(output), str(cwd), *cmd],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise InfraError(f"could not start {cmd[0]}: {result.stderr.strip()[-2000:]}")
    return int(result.stdout.strip())


@contextlib.contextmanager
def locked(p: Paths, log: Log) -> Iterator[None]:
    """Serialise ``zmot infra`` commands on one state dir (two ``up`` at once would both
    find the port free and start two brokers)."""
    p.root.mkdir(parents=True, exist_ok=True)
    gitignore = p.root / ".gitignore"
    if not gitignore.exists():  # keep broker data and jars out of `git status`
        gitignore.write_text("*\n")
    with p.lock.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another `zmot infra` command on {p.root} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
