"""Background processes of the local stack (worker, API): start detached, track by pid file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from recommender.adapters.localstack.processes import owned_pid, stop_pid
from recommender.core.settings import Settings

_MARKER = "cli.main"  # in the command line of every process :func:`start` starts


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.state_dir / "run" / f"{name}.pid"


def log_file(settings: Settings, name: str) -> Path:
    return settings.state_dir / "logs" / f"{name}.log"


def running_pid(settings: Settings, name: str) -> int | None:
    """The pid of a live process started by :func:`start`, else None."""
    return owned_pid(_pid_file(settings, name), _MARKER)


def start(settings: Settings, name: str, args: list[str], env: dict[str, str]) -> int:
    """Start ``zmot <args>`` detached with ``env`` added; its output goes to a log file."""
    pid = running_pid(settings, name)
    if pid is not None:
        return pid
    log_path = log_file(settings, name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(settings, name).parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", _MARKER, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    _pid_file(settings, name).write_text(str(proc.pid))
    return proc.pid


def stop(settings: Settings, name: str, timeout_s: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``; True if something was running."""
    pid = running_pid(settings, name)
    _pid_file(settings, name).unlink(missing_ok=True)
    if pid is None:
        return False
    stop_pid(pid, timeout_s)
    return True
