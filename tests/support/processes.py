"""The zmot processes the tests run: the ``zmot`` command, and a stream worker and the API,
each in a subprocess with the ``ZMOT_*`` environment of its settings and its output in a log
file.

The ``worker`` fixture (imported by the root conftest, so every test can use it) starts
workers for one test and stops them at teardown, printing their logs, which pytest shows when
the test failed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from recommender.adapters.localstack import free_port, stop_child
from recommender.core.settings import Settings
from stream.app import datadir_for

ROOT = Path(__file__).resolve().parents[2]
ZMOT = Path(sys.executable).parent / "zmot"  # the installed console script
STOP_TIMEOUT_S = 20.0

WORKER_CODE = (
    "from stream.worker import run_worker; from recommender.core.settings import Settings; "
    "run_worker(Settings(), rebuild={rebuild})"
)


def worker_env(settings: Settings) -> dict[str, str]:
    """This process's environment without its ``ZMOT_*`` variables, plus those of ``settings``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZMOT_")},
        **settings.to_env(),
    }


def run_zmot(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 600.0
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``zmot`` command as a user would; its output captured as text."""
    return subprocess.run(
        [str(ZMOT), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


class LoggedProcess:
    """A Python subprocess with the environment of ``settings``, its output in a log file."""

    def __init__(self, settings: Settings, log_path: Path, args: list[str]) -> None:
        self.settings = settings
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=worker_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


class WorkerProcess(LoggedProcess):
    """A stream worker (``run_worker``) running in a subprocess."""

    def __init__(self, settings: Settings, log_path: Path, *, rebuild: bool = False) -> None:
        super().__init__(settings, log_path, ["-c", WORKER_CODE.format(rebuild=rebuild)])

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait for the clean shutdown (kill after ``timeout_s``); the exit code."""
        killed = stop_child(self.proc, signal.SIGTERM, timeout_s)
        if killed:
            raise AssertionError(f"worker did not stop within {timeout_s} s")
        self._log.close()
        return self.proc.returncode

    def wait_exit(self, timeout_s: float) -> int:
        """Wait for the worker to exit on its own; the exit code."""
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout_s} s") from None


class ApiProcess(LoggedProcess):
    """``python -m api.server`` in a subprocess."""

    def __init__(self, settings: Settings, log_path: Path, args: tuple[str, ...] = ()) -> None:
        super().__init__(settings, log_path, ["-m", "api.server", *args])
        self.url = f"http://127.0.0.1:{settings.api_port}"

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Return once ``/readyz`` answers 200; fail if the API exits or the time is up."""
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, self.log_text()
            assert time.monotonic() < deadline, f"API not ready within {timeout_s} s"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGINT (uvicorn's clean shutdown), SIGKILL after 15 s."""
        stop_child(self.proc, signal.SIGINT, 15.0)
        self._log.close()


@contextmanager
def running_api(settings: Settings, log_path: Path) -> Iterator[ApiProcess]:
    """An API process, ready, stopped afterwards; its log's tail printed (pytest shows it
    when the test failed)."""
    proc = ApiProcess(settings, log_path)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()
        print(proc.log_text()[-5000:])  # noqa: T201


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: ``worker(settings, rebuild=False, **overrides)`` starts a worker subprocess
    for this test (``rebuild``: ``zmot worker --rebuild``)."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, *, rebuild: bool = False, **overrides: object) -> WorkerProcess:
        settings = settings.model_copy(update={"worker_web_port": free_port(), **overrides})
        proc = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", rebuild=rebuild)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            proc.stop()
        finally:
            shutil.rmtree(datadir_for(proc.settings), ignore_errors=True)
            # Shown by pytest only when the test failed.
            print(f"----- {proc.log_path.name} (exit {proc.proc.returncode}) -----")  # noqa: T201
            print(proc.log_text()[-20000:])  # noqa: T201
