"""Fast unit tests of ``recommender.adapters.localstack``: rendering, tool checks and port
conflicts.

Nothing here starts Kafka or Redis (``make test`` starts the real stack before pytest); the
port tests hold a port with a plain listening socket.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.adapters import localstack
from recommender.core.errors import InfraError
from recommender.core.settings import Settings


@pytest.fixture
def listener() -> Iterator[int]:
    """A port some other process (this test) listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "kafka_bootstrap": f"127.0.0.1:{localstack.free_port()}",
        "redis_url": f"redis://127.0.0.1:{localstack.free_port()}/0",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _props(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_server_properties_derive_from_settings(tmp_path: Path) -> None:
    s = _settings(tmp_path, kafka_bootstrap="127.0.0.1:19092", topic_partitions=6)
    props = _props(localstack.render_server_properties(s))
    assert props["node.id"] == "1"
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["num.partitions"] == "6"
    assert props["auto.create.topics.enable"] == "true"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1"
    assert Path(props["log.dirs"]) == (tmp_path / "state" / "kafka" / "data").resolve()
    assert "9092" not in props["listeners"].replace("19092", "")


def test_server_properties_advertise_localhost_but_bind_an_address(tmp_path: Path) -> None:
    props = _props(
        localstack.render_server_properties(_settings(tmp_path, kafka_bootstrap="localhost:9500"))
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9500,CONTROLLER://127.0.0.1:9501"
    assert props["advertised.listeners"] == "PLAINTEXT://localhost:9500"


def test_relative_state_dir_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    p = localstack.paths(_settings(tmp_path, state_dir=Path(".zmot/test")))
    assert p.root == tmp_path.resolve() / ".zmot" / "test"
    assert p.libs == p.root / "kafka" / "libs"


def test_controller_port_must_fit(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="65535"):
        localstack.kafka_endpoints(_settings(tmp_path, kafka_bootstrap="127.0.0.1:65535"))


def test_cluster_id_looks_like_kafkas() -> None:
    ids = {localstack.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "22-ea" 2024-03-19', 22),
        ("something else", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert localstack.parse_java_major(output) == major


def _fake_tool(directory: Path, name: str, script: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\n" + script + "\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_missing_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InfraError, match=r"Java 17\+ not found on PATH.*openjdk-17-jre-headless"):
        localstack.find_java()


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _fake_tool(bin_dir, "java", "echo 'openjdk version \"11.0.2\" 2019-01-15' >&2")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(InfraError, match=r"Java 11 .* too old.*17"):
        localstack.find_java()


def test_java_home_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path / "jdk" / "bin", "java", "echo 'openjdk version \"21.0.1\"' >&2")
    _fake_tool(tmp_path / "bin", "java", "echo 'openjdk version \"11.0.2\"' >&2")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert localstack.find_java() == str(tmp_path / "jdk" / "bin" / "java")


def test_missing_maven_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InfraError, match=r"Maven \(mvn\) not found.*apt-get install maven"):
        localstack.ensure_kafka_libs(localstack.paths(_settings(tmp_path)), log=lambda _: None)


def test_resolved_jars_are_not_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = localstack.paths(_settings(tmp_path))
    p.libs.mkdir(parents=True)
    import hashlib

    digest = hashlib.sha256((localstack.INFRA_KAFKA_DIR / "pom.xml").read_bytes()).hexdigest()
    p.libs_marker.write_text(digest + "\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # mvn would not be found
    localstack.ensure_kafka_libs(p, log=lambda _: None)
    p.libs_marker.write_text("a different pom\n")
    with pytest.raises(InfraError, match="Maven"):
        localstack.ensure_kafka_libs(p, log=lambda _: None)


def test_pom_pins_slf4j_2_for_the_log4j2_binding() -> None:
    pom = (localstack.INFRA_KAFKA_DIR / "pom.xml").read_text()
    assert "<slf4j.version>2." in pom and "log4j-slf4j2-impl" in pom


def test_kafka_port_taken_by_a_stranger(tmp_path: Path, listener: int) -> None:
    s = _settings(tmp_path, kafka_bootstrap=f"127.0.0.1:{listener}")
    with pytest.raises(InfraError) as err:
        localstack.up(s, log=lambda _: None)
    message = str(err.value)
    assert f"port {listener} is in use by another process" in message
    assert "ZMOT_KAFKA_BOOTSTRAP" in message


def test_kafka_controller_port_taken_by_a_stranger(tmp_path: Path, listener: int) -> None:
    s = _settings(tmp_path, kafka_bootstrap=f"127.0.0.1:{listener - 1}")
    if localstack.port_in_use("127.0.0.1", listener - 1):
        pytest.skip("the port below the test's listener is taken too")
    with pytest.raises(InfraError, match=rf"port {listener} .*controller.*ZMOT_KAFKA_BOOTSTRAP"):
        localstack.up(s, log=lambda _: None)


def test_redis_port_taken_by_a_stranger(tmp_path: Path, listener: int) -> None:
    # A remote Kafka is left alone, so up() goes straight to Redis.
    s = _settings(
        tmp_path,
        kafka_bootstrap="kafka.example.com:9092",
        redis_url=f"redis://127.0.0.1:{listener}/0",
    )
    logs: list[str] = []
    with pytest.raises(InfraError, match=rf"port {listener} is in use.*ZMOT_REDIS_URL"):
        localstack.up(s, log=logs.append)
    assert any("kafka.example.com:9092 is not on this machine" in line for line in logs)


def test_missing_redis_server_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _settings(
        tmp_path,
        kafka_bootstrap="kafka.example.com:9092",
        redis_url=f"redis://127.0.0.1:{localstack.free_port()}/0",
    )
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InfraError, match="redis-server not found.*apt-get install redis-server"):
        localstack.up(s, log=lambda _: None)


def test_down_and_status_when_nothing_runs(tmp_path: Path) -> None:
    s = _settings(
        tmp_path,
        kafka_bootstrap=f"127.0.0.1:{localstack.free_port()}",
        redis_url=f"redis://127.0.0.1:{localstack.free_port()}/0",
    )
    logs: list[str] = []
    localstack.down(s, log=logs.append)
    localstack.down(s, log=logs.append)
    assert logs == ["kafka: not running", "redis: not running"] * 2
    state = localstack.status(s)
    assert set(state) == {"kafka", "redis"}
    for service in state.values():
        assert service["running"] is False and service["pid"] is None
        assert service["healthy"] is False and service["managed"] is True
    assert state["kafka"]["address"] == s.kafka_bootstrap


def test_stale_pid_file_of_another_program_is_not_ours(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    p = localstack.paths(s)
    p.kafka.mkdir(parents=True)
    p.kafka_pid.write_text(f"{os.getpid()}\n")  # alive, but pytest, not kafka.Kafka
    assert localstack.status(s)["kafka"]["running"] is False
    logs: list[str] = []
    localstack.down(s, log=logs.append)
    assert logs[0] == "kafka: not running"
    assert not p.kafka_pid.exists()


def test_port_in_use_sees_a_listener(listener: int) -> None:
    assert localstack.port_in_use("127.0.0.1", listener)
    assert not localstack.port_in_use("127.0.0.1", localstack.free_port())


def test_redis_ping_on_a_closed_port_is_false() -> None:
    assert localstack.redis_ping("127.0.0.1", localstack.free_port(), timeout_s=0.2) is False


def test_importing_has_no_side_effects() -> None:
    import subprocess
    import sys

    code = "import sys; import recommender.adapters.localstack; print('aiokafka' in sys.modules)"
    root = Path(localstack.__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False" and out.stderr == ""


def test_tcp_open_sees_a_listener(listener: int) -> None:
    assert localstack.tcp_open("127.0.0.1", listener)
    assert not localstack.tcp_open("127.0.0.1", localstack.free_port())


def test_stop_child_terminates_and_kills_what_ignores_sigterm() -> None:
    import subprocess
    import sys

    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert localstack.stop_child(polite, timeout_s=10) is False
    assert polite.returncode == -15
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert stubborn.stdout is not None and stubborn.stdout.readline()  # SIGTERM is ignored now
    assert localstack.stop_child(stubborn, timeout_s=0.2) is True
    assert stubborn.returncode == -9
    stubborn.stdout.close()
    assert localstack.stop_child(stubborn) is False  # already gone: only reaped


def test_free_port_stays_out_of_the_ports_outgoing_connections_get() -> None:
    from recommender.adapters.localstack import net

    low = net._ephemeral_low()
    for _ in range(20):
        port = localstack.free_port()
        assert not localstack.port_in_use("127.0.0.1", port)
        assert not localstack.port_in_use("127.0.0.1", port + 1)  # a Kafka controller's
        if low - net.RESERVED_ABOVE - net.LOWEST_PICKED >= 1000:
            assert net.LOWEST_PICKED <= port and port + net.RESERVED_ABOVE <= low


def test_free_port_skips_a_port_whose_next_port_is_taken(
    listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.adapters.localstack import net

    picks = iter([listener - 1, listener, listener + 5])
    monkeypatch.setattr(net.random.Random, "randrange", lambda self, a, b: next(picks))
    monkeypatch.setattr(net, "_ephemeral_low", lambda: 65_000)
    if localstack.port_in_use("127.0.0.1", listener + 5) or localstack.port_in_use(
        "127.0.0.1", listener + 6
    ):
        pytest.skip("the ports after the listener are taken on this machine")
    assert localstack.free_port() == listener + 5
