"""A local Redis Cluster (``zmot infra up --redis-cluster N``): N masters of Debian's
``redis-server`` on loopback, no replicas, slots spread by ``redis-cli --cluster create``.

The nodes listen on the port of ``ZMOT_REDIS_URL`` and the N - 1 ports after it (each also
uses its port + 10000 for the cluster bus), daemonized with the same append-only file as the
single Redis, each in ``<state_dir>/redis-cluster/<port>/`` with its ``nodes.conf``: a node
restarted from its directory rejoins the cluster it was part of. Workers, API and tools then
need ``ZMOT_REDIS_CLUSTER=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from recommender.adapters.localstack.logfiles import last_lines, tails
from recommender.adapters.localstack.net import bind_host, free_port, port_busy_error, port_in_use
from recommender.adapters.localstack.paths import Paths
from recommender.adapters.localstack.processes import Log, owned_pid, stop_pid
from recommender.adapters.localstack.redis import (
    REDIS_START_TIMEOUT_S,
    REDIS_STOP_TIMEOUT_S,
    local_redis,
    redis_password,
    redis_ping,
    start_redis_server,
)
from recommender.adapters.localstack.tools import find_redis_server
from recommender.core.errors import InfraError
from recommender.core.settings import Settings

CLUSTER_BUS_OFFSET = 10000
"""Redis Cluster's bus port is the node's port + 10000."""

CLUSTER_OK_TIMEOUT_S = 30.0
_MARKER = "redis-server"


def cluster_ports(base: int, nodes: int) -> list[int]:
    """The ports of ``nodes`` cluster nodes from ``base`` (ZMOT_REDIS_URL's port) on."""
    if nodes < 1:
        raise InfraError(f"--redis-cluster needs at least 1 node, got {nodes}")
    if base + nodes - 1 + CLUSTER_BUS_OFFSET > 65535:
        raise InfraError(
            f"ports {base}..{base + nodes - 1} leave no room for the cluster bus (port + "
            f"{CLUSTER_BUS_OFFSET} must be at most 65535): set ZMOT_REDIS_URL to a lower port"
        )
    return list(range(base, base + nodes))


def free_cluster_port(nodes: int, host: str = "127.0.0.1") -> int:
    """A first port with ``nodes`` free ports in a row from it, and their bus ports free too
    (for tests and benchmarks that start a cluster of their own)."""
    for _ in range(100):
        base = free_port()
        ports = list(range(base, base + nodes))
        if ports[-1] + CLUSTER_BUS_OFFSET > 65535:
            continue
        if not any(port_in_use(host, p) for p in ports + [p + CLUSTER_BUS_OFFSET for p in ports]):
            return base
    raise InfraError(f"no {nodes} free loopback ports in a row (with their cluster bus ports)")


def node_dir(p: Paths, port: int) -> Path:
    return p.redis_cluster / str(port)


def node_pidfile(p: Paths, port: int) -> Path:
    return node_dir(p, port) / "redis.pid"


def node_log(p: Paths, port: int) -> Path:
    return node_dir(p, port) / "redis.log"


def known_ports(p: Paths) -> list[int]:
    """Ports of the cluster nodes this state dir has started at some time (their dirs)."""
    if not p.redis_cluster.is_dir():
        return []
    return sorted(int(d.name) for d in p.redis_cluster.iterdir() if d.name.isdigit())


def redis_call(
    host: str, port: int, *args: str, password: str | None = None, timeout_s: float = 2.0
) -> bytes | None:
    """One command's reply (RESP by hand, no client lib): a simple or error line without its
    type byte, or a bulk string's body; None when the server cannot be reached."""

    def frame(parts: tuple[str, ...]) -> bytes:
        out = b"*%d\r\n" % len(parts)
        for part in parts:
            data = part.encode()
            out += b"$%d\r\n%s\r\n" % (len(data), data)
        return out

    try:
        with socket.create_connection((bind_host(host), port), timeout=timeout_s) as sock:
            if password:
                sock.sendall(frame(("AUTH", password)))
                if not _read_reply(sock).startswith(b"OK"):
                    return None
            sock.sendall(frame(args))
            return _read_reply(sock)
    except OSError:
        return None


def _read_reply(sock: socket.socket) -> bytes:
    buf = b""
    while b"\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n")
    if not head.startswith(b"$"):
        return head[1:]
    size = int(head[1:])
    if size < 0:
        return b""
    while len(rest) < size + 2:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        rest += chunk
    return rest[:size]


def cluster_info(host: str, port: int, password: str | None = None) -> dict[str, str]:
    """``CLUSTER INFO`` of one node as a dict (empty when it does not answer)."""
    reply = redis_call(host, port, "CLUSTER", "INFO", password=password)
    if reply is None:
        return {}
    pairs = (line.split(":", 1) for line in reply.decode().splitlines() if ":" in line)
    return {key: value for key, value in pairs}


def _start_node(redis_server: str, host: str, port: int, p: Paths, password: str | None) -> None:
    node_dir(p, port).mkdir(parents=True, exist_ok=True)
    start_redis_server(
        redis_server, host, port, password,
        data_dir=node_dir(p, port), pidfile=node_pidfile(p, port), logfile=node_log(p, port),
        extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-node-timeout", "5000"),
        what=f"redis-server (cluster node {port})",
    )  # fmt: skip


def _wait_until(check: Any, timeout_s: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise InfraError(
                f"{what} within {timeout_s:.0f} s\n{tails(*((log, 0) for log in logs))}"
            )
        time.sleep(0.1)


def _create(host: str, ports: list[int], password: str | None) -> None:
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        raise InfraError("redis-cli not found on PATH: apt-get install redis-tools")
    env = dict(os.environ)
    if password:
        env["REDISCLI_AUTH"] = password  # not on the command line
    addresses = [f"{bind_host(host)}:{port}" for port in ports]
    result = subprocess.run(
        [redis_cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
         "--cluster-yes"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if result.returncode != 0:
        raise InfraError(
            f"redis-cli --cluster create failed:\n{last_lines(result.stdout + result.stderr, 20)}"
        )


def up_redis_cluster(settings: Settings, p: Paths, log: Log, nodes: int) -> None:
    """Start (or find running) ``nodes`` cluster masters on ZMOT_REDIS_URL's port and the ports
    after it, create the cluster if they are new, and wait until every node says
    ``cluster_state:ok``."""
    local = local_redis(settings, log)
    if local is None:
        return
    host, base = local
    ports = cluster_ports(base, nodes)
    others = [port for port in known_ports(p) if port not in ports]
    if others:
        raise InfraError(
            f"{p.redis_cluster} holds a cluster of other nodes ({', '.join(map(str, others))}): "
            "`zmot infra down` and remove that directory, or keep the same port and node count"
        )
    password = redis_password(settings)
    started = time.monotonic()
    redis_server = find_redis_server()
    fresh = False
    for port in ports:
        if owned_pid(node_pidfile(p, port), _MARKER) is not None:
            continue
        node_pidfile(p, port).unlink(missing_ok=True)
        for busy in (port, port + CLUSTER_BUS_OFFSET):
            if port_in_use(host, busy):
                raise port_busy_error(
                    host, busy, f"a zmot Redis Cluster node of {p.root}", "ZMOT_REDIS_URL",
                    f"ZMOT_REDIS_URL=redis://127.0.0.1:{max(1024, base - 100)}/0",
                )  # fmt: skip
        fresh = fresh or not (node_dir(p, port) / "nodes.conf").exists()
        _start_node(redis_server, host, port, p, password)
    logs = [node_log(p, port) for port in ports]
    _wait_until(
        lambda: all(redis_ping(host, port, password=password) for port in ports),
        REDIS_START_TIMEOUT_S, "the Redis Cluster nodes did not answer PING", logs,
    )  # fmt: skip
    assigned = cluster_info(host, ports[0], password).get("cluster_slots_assigned", "0")
    if fresh and assigned == "0":
        _create(host, ports, password)
    _wait_until(
        lambda: all(
            cluster_info(host, port, password).get("cluster_state") == "ok" for port in ports
        ),
        CLUSTER_OK_TIMEOUT_S, "the Redis Cluster did not reach cluster_state:ok", logs,
    )  # fmt: skip
    pids = [owned_pid(node_pidfile(p, port), _MARKER) for port in ports]
    log(
        f"redis cluster: {nodes} masters on {host}:{ports[0]}-{ports[-1]} (pids "
        f"{', '.join(map(str, pids))}) ok in {time.monotonic() - started:.1f} s; "
        "set ZMOT_REDIS_CLUSTER=true"
    )


def down_redis_cluster(p: Paths, log: Log) -> None:
    """Stop every cluster node this state dir started (data and nodes.conf stay)."""
    ports = known_ports(p)
    if not ports:
        return
    stopped = []
    for port in ports:
        pid = owned_pid(node_pidfile(p, port), _MARKER)
        if pid is not None:
            stop_pid(pid, REDIS_STOP_TIMEOUT_S)
            stopped.append(port)
        node_pidfile(p, port).unlink(missing_ok=True)
    what = f"stopped nodes {', '.join(map(str, stopped))}" if stopped else "not running"
    log(f"redis cluster: {what}")


def redis_cluster_status(settings: Settings, p: Paths) -> dict[str, Any] | None:
    """The cluster's entry of :func:`recommender.adapters.localstack.status` (None when this
    state dir never started one)."""
    ports = known_ports(p)
    if not ports:
        return None
    host = settings.redis_host_port[0]
    password = redis_password(settings)
    pids = {port: owned_pid(node_pidfile(p, port), _MARKER) for port in ports}
    states = {port: cluster_info(host, port, password).get("cluster_state") for port in ports}
    return {
        "running": all(pid is not None for pid in pids.values()),
        "pid": ",".join(str(pid) for pid in pids.values()),
        "address": f"{host}:{ports[0]}-{ports[-1]}",
        "healthy": all(state == "ok" for state in states.values()),
        "managed": True,
        "nodes": {str(port): {"pid": pids[port], "cluster_state": states[port]} for port in ports},
        "log": str(p.redis_cluster),
    }


__all__ = [
    "cluster_info",
    "cluster_ports",
    "down_redis_cluster",
    "free_cluster_port",
    "redis_call",
    "redis_cluster_status",
    "up_redis_cluster",
]
