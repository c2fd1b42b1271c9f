"""One Redis connection shared by every concurrent request of a process: the API's hot read.

redis-py spends more CPU on a pipeline than Redis does on its commands: a connection taken from
the pool and checked, each command packed, each reply read under its own timeout, the
connection given back (about 0.15 ms of a next-best-offer answer's 0.5 ms, BENCHMARKS.md,
issue 12). Redis answers the commands of one connection in the order they came, so a single
connection can carry many callers at once: :class:`MuxConnection` writes each call's commands
in one write and hands the replies, parsed by hiredis as they arrive, to the callers in order.
Concurrent requests thus share one socket and its round trips (pipelining across requests).

Only for plain servers (``redis://`` and ``unix://``; :func:`mux_for` says None for TLS and
Redis Cluster, whose callers keep redis-py). Errors are redis-py's: a connection that fails or
closes raises :class:`redis.exceptions.ConnectionError` in every call waiting on it and is
opened again by the next call; a call with no reply within ``socket_timeout`` raises
:class:`redis.exceptions.TimeoutError` and closes the connection (a hung server); an error reply
raises :class:`redis.exceptions.ResponseError` after all replies of the call were read. A call
cancelled while it waits (a request's deadline) leaves its replies to be read and dropped:
the next caller still gets its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = Sequence[bytes | str | int]


def pack(commands: Sequence[Command]) -> bytes:
    """The RESP encoding of ``commands`` (texts as UTF-8, integers in decimal)."""
    out: list[bytes] = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = (
                arg
                if isinstance(arg, bytes)
                else arg.encode()
                if isinstance(arg, str)
                else b"%d" % arg
            )
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass
class _Call:
    future: asyncio.Future[list[Any]]
    expected: int
    sent: float
    replies: list[Any] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    """Parses replies as they arrive and gives them to the oldest waiting call."""

    def __init__(self, socket_timeout: float | None) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.calls: deque[_Call] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.socket_timeout = socket_timeout
        self._watchdog: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []

    def call(self, data: bytes, expected: int) -> asyncio.Future[list[Any]]:
        """Queue one call's commands; its replies come in the future returned.

        The calls queued while the event loop runs other callbacks leave in one write when it
        gets to :meth:`_flush`, one loop turn later: under load, several requests share a
        send (a loopback send costs as much CPU as the rest of the read) and Redis reads
        them at once."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        now = loop.time()
        self.calls.append(_Call(future, expected, now))
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(data)
        if self.socket_timeout is not None and self._watchdog is None:
            self._watchdog = loop.call_at(now + self.socket_timeout, self._watch)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and self.lost is None:  # else its calls have failed
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _watch(self) -> None:
        """One timer per connection, not one per call: fails the connection when its oldest
        waiting call has had no reply within ``socket_timeout`` (a hung server)."""
        self._watchdog = None
        if not self.calls or self.lost is not None or self.socket_timeout is None:
            return
        loop = asyncio.get_running_loop()
        due = self.calls[0].sent + self.socket_timeout
        if loop.time() >= due:
            self.fail(RedisTimeoutError(f"no reply from Redis within {self.socket_timeout:g} s"))
        else:
            self._watchdog = loop.call_at(due, self._watch)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        calls = self.calls
        try:
            while (reply := reader.gets()) is not False:
                if not calls:
                    raise hiredis.ProtocolError("a reply that no call waits for")
                call = calls[0]
                call.replies.append(reply)
                if len(call.replies) == call.expected:
                    calls.popleft()
                    if not call.future.done():  # done: cancelled, its replies dropped
                        call.future.set_result(call.replies)
        except hiredis.ProtocolError as exc:
            self.fail(RedisConnectionError(f"Redis protocol error: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        why = exc or "closed by the server"
        self.fail(RedisConnectionError(f"connection to Redis lost: {why}"))

    def fail(self, exc: BaseException) -> None:
        """Close the connection and fail every call waiting on it."""
        if self.lost is None:
            self.lost = exc
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.transport is not None:
            self.transport.close()
        while self.calls:
            call = self.calls.popleft()
            if not call.future.done():
                call.future.set_exception(exc)


class MuxConnection:
    """One connection to a Redis server, opened on first use and again after a failure."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 5.0,
        socket_timeout: float | None = 5.0,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.db, self.username, self.password = db, username, password
        self.connect_timeout, self.socket_timeout = connect_timeout, socket_timeout
        self._protocol: _Protocol | None = None
        self._opening: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MuxConnection:
        """A connection to a ``redis://`` or ``unix://`` URL (ValueError for others)."""
        parsed = parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        if "connection_class" in parsed and "path" not in parsed:
            raise ValueError("MuxConnection speaks plain TCP or a Unix socket, not TLS")
        return cls(
            host=parsed.get("host") or "127.0.0.1",
            port=int(parsed.get("port") or 6379),
            path=parsed.get("path"),
            db=int(parsed.get("db") or 0),
            username=parsed.get("username"),
            password=parsed.get("password"),
            **options,
        )

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """The replies of ``commands``, sent in one write (ResponseError on an error reply)."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._open()
        replies = await protocol.call(pack(commands), len(commands))
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def _open(self) -> _Protocol:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    if self.path is not None:
                        _, protocol = await loop.create_unix_connection(
                            self._protocol_factory, self.path
                        )
                    else:
                        _, protocol = await loop.create_connection(
                            self._protocol_factory, self.host, self.port
                        )
            except (OSError, TimeoutError) as exc:
                where = self.path or f"{self.host}:{self.port}"
                raise RedisConnectionError(f"cannot connect to Redis at {where}: {exc}") from exc
            hello: list[Command] = []
            if self.password is not None:
                user = [self.username] if self.username else []
                hello.append(["AUTH", *user, self.password])
            if self.db:
                hello.append(["SELECT", self.db])
            if hello:
                try:
                    replies = await protocol.call(pack(hello), len(hello))
                except BaseException:
                    protocol.fail(RedisConnectionError("connection set-up did not finish"))
                    raise
                for reply in replies:
                    if isinstance(reply, ResponseError):
                        protocol.fail(RedisConnectionError(str(reply)))
                        raise RedisConnectionError(f"Redis refused the connection: {reply}")
            self._protocol = protocol
            return protocol

    def _protocol_factory(self) -> _Protocol:
        return _Protocol(self.socket_timeout)

    async def aclose(self) -> None:
        """Close the connection (calls waiting on it fail; a later call opens a new one)."""
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("connection closed by the client"))
            self._protocol = None


def mux_for(url: str, cluster: bool) -> MuxConnection | None:
    """A :class:`MuxConnection` to ``url``, or None where it does not apply (a Redis Cluster,
    TLS, another scheme): the caller then keeps redis-py."""
    if cluster or not url.startswith(("redis://", "unix://")):
        return None
    try:
        return MuxConnection.from_url(url)
    except ValueError:
        return None
