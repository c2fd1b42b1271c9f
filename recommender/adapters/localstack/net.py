"""Loopback addresses and ports of the local stack: which hosts are ours, whether a port is
taken, and a free port for a process that needs one (tests, benchmarks)."""

from __future__ import annotations

import errno
import random
import socket
from pathlib import Path

from recommender.core.errors import InfraError


def bind_host(host: str) -> str:
    """An IP literal for ``host`` (a loopback name or address)."""
    return "127.0.0.1" if host.lower() == "localhost" else host.strip("[]")


def url_host(host: str) -> str:
    """``host`` as it appears in a URL or listener (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (tries to bind it, like the
    service would; SO_REUSEADDR so a socket in TIME_WAIT does not count)."""
    bind = bind_host(host)
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise InfraError(f"cannot use {host}:{port}: {exc}") from exc
    return False


def port_busy_error(host: str, port: int, what: str, setting: str, example: str) -> InfraError:
    """The error for a port held by a process that is not ``what``, naming the setting to change."""
    return InfraError(
        f"port {port} is in use by another process (not {what}): set {setting} to another "
        f"port (e.g. {example}) or stop that process (`ss -ltnp 'sport = :{port}'` names it)"
    )


def tcp_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether ``host:port`` accepts a TCP connection."""
    try:
        with socket.create_connection((bind_host(host), port), timeout=timeout_s):
            return True
    except OSError:
        return False


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Where Linux says which ports it hands out to outgoing connections."""

LOWEST_PICKED = 10_000
RESERVED_ABOVE = 10_016
"""Room kept above a picked port: a Kafka controller on port + 1, a Redis Cluster's nodes on the
next ports and their bus ports 10,000 above (:mod:`.redis_cluster`)."""


def _ephemeral_low() -> int:
    """The first port the OS may give an outgoing connection (32768 if it does not say)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port nothing listens on right now, with the port after it free too (a local
    Kafka broker puts its controller there), for a server a test or benchmark starts.

    Picked at random below the ports the OS hands to outgoing connections (with room for
    :data:`RESERVED_ABOVE`), so that no client's connection can take it, or the one after it,
    between this choice and the server's bind (a broker's JVM binds seconds later, while the
    tests' clients open connections). Where that range is too small, the OS picks one."""
    high = _ephemeral_low() - RESERVED_ABOVE
    if high - LOWEST_PICKED >= 1000:
        pick = random.Random()
        for _ in range(100):
            port = pick.randrange(LOWEST_PICKED, high)
            if not port_in_use("127.0.0.1", port) and not port_in_use("127.0.0.1", port + 1):
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        chosen: int = sock.getsockname()[1]
        return chosen
