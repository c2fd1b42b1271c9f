"""The API's shared Redis connection (:mod:`recommender.adapters.redis_mux`) against real
redis-servers: every caller gets its own replies, whatever fails around it."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from recommender.adapters.localstack import free_port
from recommender.adapters.privacy_store import PrivacyStore
from recommender.adapters.redis_client import client_for, close
from recommender.adapters.redis_mux import MuxConnection, mux_for, pack
from recommender.core.profile import Profile
from recommender.core.settings import Settings
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def test_commands_are_packed_as_resp() -> None:
    assert pack([["GET", "k"], [b"SET", "ключ", 12]]) == (
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        b"*3\r\n$3\r\nSET\r\n$8\r\n\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\r\n$2\r\n12\r\n"
    )


def test_mux_applies_to_plain_servers_only() -> None:
    assert isinstance(mux_for("redis://127.0.0.1:6379/0", cluster=False), MuxConnection)
    assert isinstance(mux_for("unix:///tmp/redis.sock?db=2", cluster=False), MuxConnection)
    assert mux_for("redis://127.0.0.1:6379/0", cluster=True) is None
    assert mux_for("rediss://127.0.0.1:6379/0", cluster=False) is None
    parsed = MuxConnection.from_url("redis://ann:secret@10.0.0.1:7000/3")
    assert (parsed.host, parsed.port, parsed.db) == ("10.0.0.1", 7000, 3)
    assert (parsed.username, parsed.password) == ("ann", "secret")


async def test_concurrent_callers_each_get_their_own_replies(redis_server: RedisServer) -> None:
    mux = MuxConnection.from_url(redis_server.url)
    try:
        await mux.execute([["SET", "n", "0"]])

        async def one(i: int) -> list[object]:
            return await mux.execute([["ECHO", f"call-{i}"], ["INCR", "n"], ["ECHO", str(i)]])

        replies = await asyncio.gather(*(one(i) for i in range(300)))
        assert [(r[0], r[2]) for r in replies] == [
            (f"call-{i}".encode(), str(i).encode()) for i in range(300)
        ]
        assert sorted(int(r[1]) for r in replies) == list(range(1, 301))  # type: ignore[call-overload]  # INCR replies are ints
    finally:
        await mux.aclose()


async def test_an_error_reply_raises_after_the_call_and_the_next_call_works(
    redis_server: RedisServer,
) -> None:
    mux = MuxConnection.from_url(redis_server.url)
    try:
        await mux.execute([["SET", "text", "abc"]])
        with pytest.raises(ResponseError, match="not an integer"):
            await mux.execute([["INCR", "text"], ["ECHO", "after"]])
        assert await mux.execute([["GET", "text"]]) == [b"abc"]
    finally:
        await mux.aclose()


async def test_a_cancelled_call_leaves_its_replies_to_nobody(redis_server: RedisServer) -> None:
    mux = MuxConnection.from_url(redis_server.url)
    try:
        await mux.execute([["SET", "a", "A"], ["SET", "b", "B"]])
        redis_server.signal(signal.SIGSTOP)  # replies wait until the server runs again
        first = asyncio.create_task(mux.execute([["GET", "a"]]))
        await asyncio.sleep(0.05)
        first.cancel()
        second = asyncio.create_task(mux.execute([["GET", "b"]]))
        await asyncio.sleep(0.05)
        redis_server.signal(signal.SIGCONT)
        assert await asyncio.wait_for(second, 5) == [b"B"]
        assert first.cancelled()
    finally:
        redis_server.signal(signal.SIGCONT)
        await mux.aclose()


async def test_a_hung_server_times_out_and_a_new_connection_serves_after(
    redis_server: RedisServer,
) -> None:
    mux = MuxConnection.from_url(redis_server.url, socket_timeout=0.3)
    try:
        await mux.execute([["SET", "k", "v"]])
        redis_server.signal(signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await mux.execute([["GET", "k"]])
        assert time.monotonic() - started < 3
        redis_server.signal(signal.SIGCONT)
        assert await mux.execute([["GET", "k"]]) == [b"v"]
    finally:
        redis_server.signal(signal.SIGCONT)
        await mux.aclose()


async def test_a_connection_the_server_drops_is_opened_again(redis_server: RedisServer) -> None:
    mux = MuxConnection.from_url(redis_server.url)
    admin = redis.Redis(port=redis_server.port)
    try:
        await mux.execute([["CLIENT", "SETNAME", "mux"], ["SET", "k", "v"]])
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        await asyncio.sleep(0.05)
        assert await mux.execute([["GET", "k"]]) == [b"v"]
    finally:
        admin.close()
        await mux.aclose()


async def test_password_and_database_come_from_the_url(redis_server: RedisServer) -> None:
    admin = redis.Redis(port=redis_server.port)
    try:
        admin.config_set("requirepass", "s3cret")
        admin = redis.Redis(port=redis_server.port, password="s3cret", db=2)
        mux = MuxConnection.from_url(f"redis://:s3cret@127.0.0.1:{redis_server.port}/2")
        await mux.execute([["SET", "where", "db2"]])
        await mux.aclose()
        assert admin.get("where") == b"db2"
        wrong = MuxConnection.from_url(f"redis://:nope@127.0.0.1:{redis_server.port}/0")
        with pytest.raises(RedisConnectionError, match="refused"):
            await wrong.execute([["PING"]])
    finally:
        admin.close()


async def test_no_server_is_a_connection_error() -> None:
    mux = MuxConnection.from_url(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=2)
    with pytest.raises(RedisConnectionError, match="cannot connect"):
        await mux.execute([["PING"]])


async def test_served_profiles_read_through_the_mux_equal_redis_pys(isolated: Settings) -> None:
    client = client_for(isolated)
    mux = mux_for(isolated.redis_url, isolated.redis_cluster)
    assert mux is not None
    plain = PrivacyStore(client, isolated.redis_prefix)
    fast = PrivacyStore(client, isolated.redis_prefix, mux=mux)
    from recommender.adapters.redis_store import ProfileStore

    store = ProfileStore(client, isolated.redis_prefix, 3600.0)
    now = time.time()
    try:
        await store.put_many(
            (user, None, Profile(weights={"category=tv": weight}, landmark=now, last_ts=now))
            for user, weight in (("ann", 1.0), ("anon-1", 2.0), ("bob", 3.0), ("cid", 4.0))
        )
        await plain.link("ann", "anon-1", 3600.0)
        await plain.set_consent("bob", False)
        await plain.erase("cid", now)
        users = ["ann", "bob", "cid", "nobody"]
        want = await plain.served_profiles(users, 3600.0)
        got = await fast.served_profiles(users, 3600.0)
        assert got[1] == want[1]
        assert got[0] == want[0]
        assert got[0][0] is not None and got[0][3] is None
        assert set(got[0][0].weights) == {"category=tv"}  # ann's and her anonymous id's
        assert await fast.profiles_with_states(users) == await plain.profiles_with_states(users)
    finally:
        await mux.aclose()
        await close(client)


def test_it_runs_on_uvloop_as_the_api_server_does(redis_server: RedisServer) -> None:
    import uvloop

    async def run() -> list[Any]:
        mux = MuxConnection.from_url(redis_server.url)
        try:
            return await asyncio.gather(*(mux.execute([["ECHO", str(i)]]) for i in range(50)))
        finally:
            await mux.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(run()) == [[str(i).encode()] for i in range(50)]


async def test_calls_made_in_one_loop_turn_leave_in_one_write(redis_server: RedisServer) -> None:
    mux = MuxConnection.from_url(redis_server.url)
    try:
        await mux.execute([["PING"]])
        protocol = mux._protocol
        assert protocol is not None and protocol.transport is not None
        transport = protocol.transport
        writes: list[bytes] = []
        send = transport.write

        def counted(data: Any) -> None:  # a spy on the transport
            writes.append(bytes(data))
            send(data)

        transport.write = counted  # type: ignore[method-assign]  # the spy
        replies = await asyncio.gather(*(mux.execute([["ECHO", str(i)]]) for i in range(20)))
        assert replies == [[str(i).encode()] for i in range(20)]
        assert len(writes) == 1
        assert await mux.execute([["ECHO", "alone"]]) == [b"alone"]
        assert len(writes) == 2
    finally:
        await mux.aclose()
