"""The local Kafka broker: one KRaft node (broker and controller in one JVM) on loopback.

Its jars come once per state dir from Maven (infra/kafka/pom.xml of the source tree); its
``server.properties`` is rendered from the settings on every start; its storage is formatted
once. Topics are created through :mod:`recommender.adapters.kafka`, imported only when the
broker is contacted, so importing this module does not import aiokafka.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.adapters.localstack.logfiles import last_lines, size, tails
from recommender.adapters.localstack.net import (
    bind_host,
    port_busy_error,
    port_in_use,
    tcp_open,
    url_host,
)
from recommender.adapters.localstack.paths import Paths, paths
from recommender.adapters.localstack.processes import (
    Log,
    alive,
    owned_pid,
    spawn_detached,
    stop_pid,
)
from recommender.adapters.localstack.tools import find_java, find_maven
from recommender.core.errors import InfraError
from recommender.core.settings import Settings, is_loopback

#: infra/kafka of the source tree: the pom Maven resolves and the log4j2 config.
INFRA_KAFKA_DIR = Path(__file__).resolve().parents[3] / "infra" / "kafka"

KAFKA_HEAP = "-Xmx512m"
KAFKA_START_TIMEOUT_S = 60.0
KAFKA_STOP_TIMEOUT_S = 30.0
MAVEN_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class KafkaEndpoints:
    """Where the local broker listens: clients on ``port``, the KRaft controller on ``port+1``."""

    host: str  # as clients write it (advertised)
    bind_host: str  # an IP literal to listen on
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def kafka_endpoints(settings: Settings) -> KafkaEndpoints:
    """The broker's listener ports, from the first server of ``settings.kafka_bootstrap``."""
    host, port = settings.kafka_host_port
    host = host.strip("[]")
    if not 1 <= port <= 65534:
        raise InfraError(
            f"Kafka port {port} leaves no room for the controller port {port + 1}: "
            "set ZMOT_KAFKA_BOOTSTRAP to a port between 1024 and 65534"
        )
    return KafkaEndpoints(host=host, bind_host=bind_host(host), port=port, controller_port=port + 1)


def _prop_value(value: object) -> str:
    """A value written into a Java .properties file (backslash is its escape character)."""
    return str(value).replace("\\", "\\\\")


def render_server_properties(settings: Settings) -> str:
    """The broker's ``server.properties``: one node that is both broker and KRaft controller.

    Replication factors are 1 (one node); ``group.initial.rebalance.delay.ms=0`` and a small
    ``__consumer_offsets`` topic make consumer groups start in well under a second, which
    tests that create a group each need; short broker heartbeats make a restart quick.
    """
    ep = kafka_endpoints(settings)
    p = paths(settings)
    bind = url_host(ep.bind_host)
    name = _client_listener(settings)
    props: dict[str, object] = {
        "node.id": 1,
        "process.roles": "broker,controller",
        "listeners": f"{name}://{bind}:{ep.port},CONTROLLER://{bind}:{ep.controller_port}",
        "advertised.listeners": f"{name}://{url_host(ep.host)}:{ep.port}",
        "listener.security.protocol.map": f"{name}:{name},CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": name,
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": f"1@{bind}:{ep.controller_port}",
        "log.dirs": p.data,
        "num.partitions": settings.topic_partitions,
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 8,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "group.initial.rebalance.delay.ms": 0,
        # On restart the controller keeps the previous registration of node 1 alive for a
        # whole session timeout (default 9 s) before the new incarnation may register. One
        # node has no peer to detect failures of, so a short session only costs heartbeats.
        "broker.heartbeat.interval.ms": 500,
        "broker.session.timeout.ms": 3000,
        "num.network.threads": 2,
        "num.io.threads": 4,
        **_sasl_properties(settings),
    }
    lines = [
        "# Rendered by `zmot infra up` from the zmot settings; edits are overwritten.",
        *(f"{key}={_prop_value(value)}" for key, value in props.items()),
    ]
    return "\n".join(lines) + "\n"


def _client_listener(settings: Settings) -> str:
    """The client listener's protocol: PLAINTEXT, or SASL_PLAINTEXT with the settings' user."""
    protocol = settings.kafka_security_protocol
    if protocol not in ("PLAINTEXT", "SASL_PLAINTEXT"):
        raise InfraError(
            f"zmot infra runs PLAINTEXT or SASL_PLAINTEXT brokers, not {protocol} (TLS needs "
            "certificates: run such a broker yourself and point ZMOT_KAFKA_BOOTSTRAP at it)"
        )
    return protocol


def _sasl_credentials(settings: Settings) -> tuple[str, str, str] | None:
    """(mechanism, user, password) of a SASL broker, None for PLAINTEXT."""
    if settings.kafka_security_protocol != "SASL_PLAINTEXT":
        return None
    password = settings.kafka_sasl_password
    assert settings.kafka_sasl_username is not None and password is not None  # validated
    return settings.kafka_sasl_mechanism, settings.kafka_sasl_username, password.get_secret_value()


def _jaas_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sasl_properties(settings: Settings) -> dict[str, object]:
    """The SASL listener's settings: the one user of the settings, also used between the
    broker and itself. SCRAM users are created when the storage is formatted."""
    sasl = _sasl_credentials(settings)
    if sasl is None:
        return {}
    mechanism, user, password = sasl
    if mechanism == "PLAIN":
        module = "org.apache.kafka.common.security.plain.PlainLoginModule"
        extra = f" user_{user}={_jaas_quote(password)}"
    else:
        module = "org.apache.kafka.common.security.scram.ScramLoginModule"
        extra = ""
    jaas = f"{module} required username={_jaas_quote(user)} password={_jaas_quote(password)}"
    return {
        "sasl.enabled.mechanisms": mechanism,
        "sasl.mechanism.inter.broker.protocol": mechanism,
        f"listener.name.sasl_plaintext.{mechanism.lower()}.sasl.jaas.config": f"{jaas}{extra};",
    }


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding, like
    ``kafka-storage random-uuid`` (saves starting a JVM). Kafka avoids ids starting with
    '-' so they cannot be taken for a command-line option; so do we."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):
            return cid


def _pom() -> Path:
    pom = INFRA_KAFKA_DIR / "pom.xml"
    if not pom.is_file():
        raise InfraError(
            f"{pom} is missing: `zmot infra` needs the zmot source tree (infra/kafka/pom.xml); "
            "install zmot with `pip install -e .` from a checkout"
        )
    return pom


def ensure_kafka_libs(p: Paths, log: Log = print) -> None:
    """Copy the broker's jars into ``p.libs`` with Maven, unless the marker says they are
    complete and were resolved from the current pom. Maven's own cache (~/.m2) makes later
    state dirs quick; the first run on a clean machine downloads about 60 MB
    (jars and Maven plugins)."""
    pom = _pom()
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if p.libs.is_dir() and p.libs_marker.is_file() and p.libs_marker.read_text().strip() == digest:
        return
    mvn = find_maven()
    log(f"kafka: fetching the broker jars with Maven into {p.libs} (once; up to a minute)")
    started = time.monotonic()
    p.kafka.mkdir(parents=True, exist_ok=True)
    staging = p.kafka / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
        "dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise InfraError(
            f"Maven did not finish fetching the Kafka jars within {MAVEN_TIMEOUT_S:.0f} s: "
            "check network access to Maven Central (or the mirror in ~/.m2/settings.xml)"
        ) from exc
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        output = last_lines(result.stdout + result.stderr, 25)
        raise InfraError(
            f"Maven could not fetch the Kafka broker jars (exit {result.returncode}); it needs "
            "network access to Maven Central (or a mirror in ~/.m2/settings.xml) once:\n"
            f"{' '.join(cmd)}\n{output}"
        )
    shutil.rmtree(p.libs, ignore_errors=True)
    staging.rename(p.libs)
    p.libs_marker.write_text(digest + "\n")
    log(f"kafka: {len(list(p.libs.glob('*.jar')))} jars ready ({time.monotonic() - started:.1f} s)")


def kafka_markers(p: Paths) -> tuple[str, str]:
    """What the command line of this state dir's broker holds (see :func:`owned_pid`)."""
    return "kafka.Kafka", str(p.server_properties)


def kafka_healthy(
    host: str, port: int, timeout_s: float = 3.0, settings: Settings | None = None
) -> bool:
    """Whether a Kafka broker on ``host:port`` answers a metadata request with its brokers
    (as a client of ``settings``: with its SASL user, if any)."""
    if not tcp_open(host, port):
        return False
    from recommender.adapters.kafka import PLAINTEXT, describe_cluster, kafka_auth, run_sync

    auth = kafka_auth(settings) if settings is not None else PLAINTEXT
    address = f"{url_host(host)}:{port}"
    try:
        cluster = run_sync(lambda: describe_cluster(address, timeout_s, auth=auth))
    except Exception:
        return False
    return bool(cluster.get("brokers"))


def _kafka_local(settings: Settings, log: Log) -> KafkaEndpoints | None:
    ep = kafka_endpoints(settings)
    if is_loopback(ep.host):
        return ep
    log(f"kafka: {ep.address} is not on this machine; zmot infra leaves it alone")
    return None


def _java_cmd(java: str, p: Paths, *args: str) -> list[str]:
    return [
        java,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={p.log4j}",
        f"-Dkafka.logs.dir={p.kafka_logs}",
        "-cp",
        str(p.libs / "*"),
        *args,
    ]


def _write_kafka_config(settings: Settings, p: Paths) -> None:
    p.kafka.mkdir(parents=True, exist_ok=True)
    p.kafka_logs.mkdir(parents=True, exist_ok=True)
    p.server_properties.touch(mode=0o600)  # it may hold the SASL password
    p.server_properties.chmod(0o600)
    p.server_properties.write_text(render_server_properties(settings))
    log4j = INFRA_KAFKA_DIR / "log4j2.properties"
    if log4j.is_file():
        shutil.copyfile(log4j, p.log4j)
    elif not p.log4j.exists():  # no source tree: a minimal file-only config
        p.log4j.write_text(
            "rootLogger.level = INFO\nrootLogger.appenderRef.f.ref = f\n"
            "appender.f.type = File\nappender.f.name = f\n"
            "appender.f.fileName = ${sys:kafka.logs.dir}/server.log\n"
            "appender.f.layout.type = PatternLayout\n"
            "appender.f.layout.pattern = [%d] %p %m (%c)%n\n"
        )


def _format_storage(java: str, p: Paths, log: Log, settings: Settings) -> None:
    """Format the KRaft log dir once (static quorum: the voters come from server.properties),
    with the SCRAM user of the settings when the broker uses SCRAM (it cannot be added later
    by this tool: delete the data folder to change it)."""
    if (p.data / "meta.properties").is_file():
        return
    cluster_id = new_cluster_id()
    scram: list[str] = []
    sasl = _sasl_credentials(settings)
    if sasl is not None and sasl[0].startswith("SCRAM"):
        mechanism, user, password = sasl
        # On this tool's command line for the second it runs (local test stacks only).
        scram = ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
    cmd = _java_cmd(
        java, p, "kafka.tools.StorageTool", "format", "--ignore-formatted",
        "-t", cluster_id, "-c", str(p.server_properties), *scram,
    )  # fmt: skip
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, cwd=p.kafka,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if result.returncode != 0:
        raise InfraError(
            f"formatting the Kafka storage in {p.data} failed (exit {result.returncode}):\n"
            f"{last_lines(result.stdout + result.stderr, 20)}"
        )
    log(f"kafka: formatted {p.data} (cluster id {cluster_id})")


def _wait_kafka(
    ep: KafkaEndpoints,
    pid: int,
    p: Paths,
    timeout_s: float,
    log_offset: int = 0,
    settings: Settings | None = None,
) -> None:
    """Wait until the broker answers metadata requests; fail early if it exits."""
    deadline = time.monotonic() + timeout_s
    logs = ((p.broker_out, 0), (p.server_log, log_offset))
    while True:
        if not alive(pid):
            raise InfraError(
                f"the Kafka broker (pid {pid}) exited during start-up; see {p.server_log} "
                f"(if its data in {p.data} is damaged, delete that directory to start empty)\n"
                f"{tails(*logs)}"
            )
        if kafka_healthy(ep.host, ep.port, timeout_s=2.0, settings=settings):
            return
        if time.monotonic() > deadline:
            raise InfraError(
                f"the Kafka broker (pid {pid}) did not answer on {ep.address} within "
                f"{timeout_s:.0f} s (still running: `zmot infra down` stops it)\n"
                f"{tails(*logs)}"
            )
        time.sleep(0.25)


def up_kafka(settings: Settings, p: Paths, log: Log) -> None:
    """Start (or find running) the broker of ``p`` and create the events and dead-letter topics."""
    ep = _kafka_local(settings, log)
    if ep is None:
        return
    pid = owned_pid(p.kafka_pid, *kafka_markers(p))
    if pid is not None:
        if not kafka_healthy(ep.host, ep.port, settings=settings):
            log(f"kafka: pid {pid} is starting, waiting for {ep.address}")
            _wait_kafka(ep, pid, p, KAFKA_START_TIMEOUT_S, settings=settings)
        log(f"kafka: already running (pid {pid}) on {ep.address}")
    else:
        p.kafka_pid.unlink(missing_ok=True)
        for port, setting_port in ((ep.port, ep.port), (ep.controller_port, ep.port)):
            if port_in_use(ep.bind_host, port):
                role = "" if port == ep.port else " (Kafka controller port = bootstrap port + 1)"
                raise port_busy_error(
                    ep.host, port, f"the zmot broker of {p.root}{role}", "ZMOT_KAFKA_BOOTSTRAP",
                    f"ZMOT_KAFKA_BOOTSTRAP=127.0.0.1:{setting_port + 10}",
                )  # fmt: skip
        java = find_java()
        ensure_kafka_libs(p, log)
        _write_kafka_config(settings, p)
        _format_storage(java, p, log, settings)
        started, log_offset = time.monotonic(), size(p.server_log)
        cmd = _java_cmd(
            java, p, KAFKA_HEAP, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "kafka.Kafka", str(p.server_properties),
        )  # fmt: skip
        pid = spawn_detached(cmd, cwd=p.kafka, output=p.broker_out)
        p.kafka_pid.write_text(f"{pid}\n")
        _wait_kafka(ep, pid, p, KAFKA_START_TIMEOUT_S, log_offset, settings)
        log(f"kafka: started (pid {pid}) on {ep.address} in {time.monotonic() - started:.1f} s")
    from recommender.adapters.kafka import ensure_topics, kafka_auth, run_sync

    wanted = {settings.events_topic: settings.topic_partitions, settings.dlq_topic: 1}
    if settings.decisions_topic:
        wanted[settings.decisions_topic] = settings.topic_partitions
    retention = {settings.dlq_topic: {"retention.ms": str(settings.dlq_retention_ms)}}
    auth = kafka_auth(settings)
    actual = run_sync(
        lambda: ensure_topics(settings.kafka_bootstrap, wanted, configs=retention, auth=auth)
    )
    for name, count in actual.items():
        if count != wanted[name]:
            log(
                f"kafka: topic {name} has {count} partitions, the settings ask for "
                f"{wanted[name]} (zmot does not change existing topics)"
            )


def down_kafka(p: Paths, log: Log) -> None:
    """Stop the broker of ``p`` if it runs (SIGTERM, SIGKILL after a timeout)."""
    pid = owned_pid(p.kafka_pid, *kafka_markers(p))
    if pid is None:
        p.kafka_pid.unlink(missing_ok=True)
        log("kafka: not running")
        return
    started = time.monotonic()
    killed = stop_pid(pid, KAFKA_STOP_TIMEOUT_S)
    p.kafka_pid.unlink(missing_ok=True)
    how = "killed after SIGTERM timed out" if killed else "stopped"
    log(f"kafka: {how} (pid {pid}, {time.monotonic() - started:.1f} s)")


def kafka_status(settings: Settings, p: Paths) -> dict[str, Any]:
    """The broker's entry of :func:`recommender.adapters.localstack.status`."""
    ep = kafka_endpoints(settings)
    pid = owned_pid(p.kafka_pid, *kafka_markers(p))
    return {
        "running": pid is not None,
        "pid": pid,
        "address": ep.address,
        "healthy": kafka_healthy(ep.host, ep.port, settings=settings),
        "managed": is_loopback(ep.host),
        "log": str(p.server_log),
    }
