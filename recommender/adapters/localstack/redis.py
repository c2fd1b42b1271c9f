"""The local Redis: Debian's ``redis-server`` on loopback, daemonized, with an append-only file.

AOF with ``appendfsync everysec``: a crash of Redis (or of the machine) loses at most about the
last second of writes, and the worker re-reads exactly those from Kafka on its next start
(:mod:`stream.offsets`). No RDB snapshots: the AOF alone is the persistence.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from recommender.adapters.localstack.logfiles import last_lines, size, tails
from recommender.adapters.localstack.net import (
    bind_host,
    port_busy_error,
    port_in_use,
)
from recommender.adapters.localstack.paths import Paths
from recommender.adapters.localstack.processes import Log, owned_pid, stop_pid
from recommender.adapters.localstack.tools import find_redis_server
from recommender.core.errors import InfraError
from recommender.core.settings import Settings, is_loopback

REDIS_START_TIMEOUT_S = 10.0
REDIS_STOP_TIMEOUT_S = 10.0
REDIS_PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "everysec")
"""The persistence of every Redis zmot starts (also docker-compose.yml's, a test checks)."""
_MARKER = "redis-server"  # in the command line of the process in our pid file


def redis_ping(host: str, port: int, timeout_s: float = 1.0, password: str | None = None) -> bool:
    """Whether a Redis server answers PING on ``host:port`` (RESP by hand, no client lib),
    after ``AUTH`` with ``password`` when one is given."""
    command = b"*1\r\n$4\r\nPING\r\n"
    if password:
        secret = password.encode()
        command = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret) + command
    try:
        with socket.create_connection((bind_host(host), port), timeout=timeout_s) as sock:
            sock.sendall(command)
            reply = b""
            while reply.count(b"\r\n") < (2 if password else 1):
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
            return reply.endswith(b"+PONG\r\n") and (not password or reply.startswith(b"+OK"))
    except OSError:
        return False


def redis_password(settings: Settings) -> str | None:
    """The password of ``ZMOT_REDIS_URL`` (None without one)."""
    password = urlparse(settings.redis_url).password
    return unquote(password) if password else None


def local_redis(settings: Settings, log: Log) -> tuple[str, int] | None:
    """Host and port of ZMOT_REDIS_URL when zmot infra manages it (plain redis:// on loopback),
    else None after saying why."""
    scheme = urlparse(settings.redis_url).scheme
    host, port = settings.redis_host_port
    if scheme != "redis":
        log(f"redis: {scheme}:// URLs are not managed by zmot infra; leaving Redis alone")
        return None
    if not is_loopback(host):
        log(f"redis: {host}:{port} is not on this machine; zmot infra leaves it alone")
        return None
    return host, port


def _wait_redis(
    host: str,
    port: int,
    p: Paths,
    timeout_s: float,
    log_offset: int = 0,
    password: str | None = None,
) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        pid = owned_pid(p.redis_pid, _MARKER)
        if pid is not None and redis_ping(host, port, password=password):
            return pid
        if time.monotonic() > deadline:
            raise InfraError(
                f"redis-server did not answer PING on {host}:{port} within {timeout_s:.0f} s\n"
                f"{tails((p.redis_log, log_offset))}"
            )
        time.sleep(0.05)


def up_redis(settings: Settings, p: Paths, log: Log) -> None:
    """Start (or find running) the redis-server of ``p`` on the settings' port."""
    local = local_redis(settings, log)
    if local is None:
        return
    host, port = local
    password = redis_password(settings)
    pid = owned_pid(p.redis_pid, _MARKER)
    if pid is not None:
        if not redis_ping(host, port, password=password):
            pid = _wait_redis(host, port, p, REDIS_START_TIMEOUT_S, password=password)
        log(f"redis: already running (pid {pid}) on {host}:{port}")
        return
    p.redis_pid.unlink(missing_ok=True)
    if port_in_use(host, port):
        raise port_busy_error(
            host, port, f"the zmot Redis of {p.root}", "ZMOT_REDIS_URL",
            f"ZMOT_REDIS_URL=redis://127.0.0.1:{port + 10 if port < 65525 else port - 10}/0",
        )  # fmt: skip
    redis_server = find_redis_server()
    p.redis.mkdir(parents=True, exist_ok=True)
    started, log_offset = time.monotonic(), size(p.redis_log)
    start_redis_server(
        redis_server, host, port, password,
        data_dir=p.redis, pidfile=p.redis_pid, logfile=p.redis_log, log_offset=log_offset,
    )  # fmt: skip
    pid = _wait_redis(host, port, p, REDIS_START_TIMEOUT_S, log_offset, password)
    log(f"redis: started (pid {pid}) on {host}:{port} in {time.monotonic() - started:.1f} s")


def start_redis_server(
    redis_server: str,
    host: str,
    port: int,
    password: str | None,
    *,
    data_dir: Path,
    pidfile: Path,
    logfile: Path,
    log_offset: int = 0,
    extra: tuple[str, ...] = (),
    what: str = "redis-server",
) -> None:
    """Run ``redis-server`` daemonized on ``host:port`` with zmot's persistence in
    ``data_dir`` (``extra``: more options); raise InfraError with its output and log tail when
    it does not start. Returns once it forked (the caller waits for PING)."""
    # The first argument '-' reads a config from stdin: the password (ZMOT_REDIS_URL's, as
    # requirepass, and masterauth for a replica of a cluster) never appears on a command line
    # other users can list.
    quoted = (password or "").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    config = f'requirepass "{quoted}"\nmasterauth "{quoted}"\n' if password else ""
    cmd = [
        redis_server, "-", "--bind", bind_host(host), "--port", str(port), *extra,
        "--daemonize", "yes", "--save", "", *REDIS_PERSISTENCE,
        "--dir", str(data_dir), "--pidfile", str(pidfile), "--logfile", str(logfile),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, check=False, input=config,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"could not run {redis_server}: {exc}") from exc
    if result.returncode != 0:
        raise InfraError(
            f"{what} failed to start (exit {result.returncode}):\n"
            f"{last_lines(result.stdout + result.stderr, 20)}\n{tails((logfile, log_offset))}"
        )


def down_redis(p: Paths, log: Log) -> None:
    """Stop the redis-server of ``p`` if it runs (SIGTERM, SIGKILL after a timeout)."""
    pid = owned_pid(p.redis_pid, _MARKER)
    if pid is None:
        p.redis_pid.unlink(missing_ok=True)
        log("redis: not running")
        return
    killed = stop_pid(pid, REDIS_STOP_TIMEOUT_S)
    p.redis_pid.unlink(missing_ok=True)
    log(f"redis: {'killed after SIGTERM timed out' if killed else 'stopped'} (pid {pid})")


def redis_status(settings: Settings, p: Paths) -> dict[str, Any]:
    """Redis's entry of :func:`recommender.adapters.localstack.status`."""
    host, port = settings.redis_host_port
    plain = urlparse(settings.redis_url).scheme == "redis"
    pid = owned_pid(p.redis_pid, _MARKER)
    return {
        "running": pid is not None,
        "pid": pid,
        "address": f"{host}:{port}",
        "healthy": plain and redis_ping(host, port, password=redis_password(settings)),
        "managed": plain and is_loopback(host),
        "log": str(p.redis_log),
    }
