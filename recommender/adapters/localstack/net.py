"""Loopback addresses and ports of the local stack: which hosts are ours, whether a port is
taken, and a free port for a process that needs one (tests, benchmarks)."""

from __future__ import annotations

import errno
import socket

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


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
