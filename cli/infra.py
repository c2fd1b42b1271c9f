"""Local infrastructure for development, tests and the demo: ``zmot infra up|down|status``.

Starts a real single-node Apache Kafka broker (KRaft, broker and controller in one JVM) and
Debian's ``redis-server`` on loopback, each detached from the calling process, and stops them
again. Everything derives from :class:`~recommender.core.settings.Settings` (ports from
``kafka_bootstrap`` / ``redis_url``, files under ``state_dir``), so several stacks (the test
stack, a demo) run side by side on one machine.

Layout under ``state_dir``::

    kafka/libs/            broker jars, copied once by Maven from infra/kafka/pom.xml
    kafka/libs.sha256      marker: the pom those jars were resolved from (re-resolve on change)
    kafka/server.properties, kafka/log4j2.properties   rendered on every start
    kafka/data/            KRaft metadata and topic logs (formatted once)
    kafka/logs/server.log  the broker's own log (log4j2, size-capped)
    kafka/broker.log       the JVM's stdout/stderr (crashes, bad options)
    kafka/kafka.pid
    redis/                 working dir, redis.pid, redis.log (no persistence)

Why not Docker: the test stack must start on a clean CI machine and on developer machines
without a container runtime; Java 17, Maven and redis-server are plain packages.

Importing this module has no side effects; aiokafka is imported only when Kafka is contacted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from recommender.core.errors import InfraError
from recommender.core.settings import Settings

__all__ = [
    "KafkaEndpoints",
    "Paths",
    "down",
    "ensure_kafka_libs",
    "ensure_topic",
    "ensure_topics_async",
    "find_java",
    "kafka_endpoints",
    "kafka_healthy",
    "new_cluster_id",
    "parse_java_major",
    "paths",
    "port_in_use",
    "redis_ping",
    "render_server_properties",
    "status",
    "up",
    "wipe",
]

Log = Callable[[str], None]
T = TypeVar("T")

#: infra/kafka of the source tree: the pom Maven resolves and the log4j2 config.
INFRA_KAFKA_DIR = Path(__file__).resolve().parent.parent / "infra" / "kafka"

MIN_JAVA = 17
KAFKA_HEAP = "-Xmx512m"
KAFKA_START_TIMEOUT_S = 60.0
KAFKA_STOP_TIMEOUT_S = 30.0
REDIS_START_TIMEOUT_S = 10.0
REDIS_STOP_TIMEOUT_S = 10.0
MAVEN_TIMEOUT_S = 900.0
TOPIC_READY_TIMEOUT_S = 30.0

# Kafka error codes of CreateTopics we treat as success.
_TOPIC_ALREADY_EXISTS = 36


# --------------------------------------------------------------------------------------
# Paths and rendering (pure)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """Every file ``zmot infra`` reads or writes for one state dir (absolute paths)."""

    root: Path

    @property
    def lock(self) -> Path:
        return self.root / ".infra.lock"

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def libs(self) -> Path:
        return self.kafka / "libs"

    @property
    def libs_marker(self) -> Path:
        return self.kafka / "libs.sha256"

    @property
    def data(self) -> Path:
        return self.kafka / "data"

    @property
    def kafka_logs(self) -> Path:
        return self.kafka / "logs"

    @property
    def server_log(self) -> Path:
        return self.kafka_logs / "server.log"

    @property
    def server_properties(self) -> Path:
        return self.kafka / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.kafka / "log4j2.properties"

    @property
    def broker_out(self) -> Path:
        return self.kafka / "broker.log"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka / "kafka.pid"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def redis_pid(self) -> Path:
        return self.redis / "redis.pid"

    @property
    def redis_log(self) -> Path:
        return self.redis / "redis.log"


def paths(settings: Settings) -> Paths:
    """The files of ``settings.state_dir``, made absolute (the broker runs in another cwd)."""
    return Paths(Path(settings.state_dir).expanduser().resolve())


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


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind_host(host: str) -> str:
    """An IP literal for ``host`` (a loopback name or address)."""
    return "127.0.0.1" if host.lower() == "localhost" else host.strip("[]")


def _url_host(host: str) -> str:
    """``host`` as it appears in a URL or listener (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def kafka_endpoints(settings: Settings) -> KafkaEndpoints:
    """The broker's listener ports, from the first server of ``settings.kafka_bootstrap``."""
    host, port = settings.kafka_host_port
    host = host.strip("[]")
    if not 1 <= port <= 65534:
        raise InfraError(
            f"Kafka port {port} leaves no room for the controller port {port + 1}: "
            "set ZMOT_KAFKA_BOOTSTRAP to a port between 1024 and 65534"
        )
    return KafkaEndpoints(
        host=host, bind_host=_bind_host(host), port=port, controller_port=port + 1
    )


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
    bind = _url_host(ep.bind_host)
    props: dict[str, object] = {
        "node.id": 1,
        "process.roles": "broker,controller",
        "listeners": f"PLAINTEXT://{bind}:{ep.port},CONTROLLER://{bind}:{ep.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{_url_host(ep.host)}:{ep.port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
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
    }
    lines = [
        "# Rendered by `zmot infra up` from the zmot settings; edits are overwritten.",
        *(f"{key}={_prop_value(value)}" for key, value in props.items()),
    ]
    return "\n".join(lines) + "\n"


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding, like
    ``kafka-storage random-uuid`` (saves starting a JVM). Kafka avoids ids starting with
    '-' so they cannot be taken for a command-line option; so do we."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):
            return cid


# --------------------------------------------------------------------------------------
# Tools: Java, Maven, redis-server
# --------------------------------------------------------------------------------------


def parse_java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output ('1.8.0_292' -> 8, '17.0.15' -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


def find_java() -> str:
    """Path of a Java 17+ ``java`` ($JAVA_HOME first, like Kafka's scripts, then PATH)."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if not java:
        raise InfraError(
            f"Java {MIN_JAVA}+ not found on PATH: install openjdk-17-jre-headless "
            "(Kafka 4 needs Java 17 or newer), or set JAVA_HOME"
        )
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"cannot run {java} -version: {exc}") from exc
    major = parse_java_major(result.stderr + result.stdout)
    if major is None:
        raise InfraError(
            f"cannot tell the Java version of {java} (`java -version` said: "
            f"{(result.stderr or result.stdout).strip()[:200]!r}): Kafka 4 needs Java {MIN_JAVA}+"
        )
    if major < MIN_JAVA:
        raise InfraError(
            f"Java {major} at {java} is too old: Kafka 4 needs Java {MIN_JAVA}+; install "
            "openjdk-17-jre-headless and put it first on PATH (or set JAVA_HOME)"
        )
    return java


def _find_maven() -> str:
    mvn = shutil.which("mvn")
    if not mvn:
        raise InfraError(
            "Maven (mvn) not found on PATH: install maven (apt-get install maven); zmot uses it "
            "once per state dir to fetch the Kafka broker jars from Maven Central"
        )
    return mvn


def _find_redis_server() -> str:
    redis = shutil.which("redis-server")
    if not redis:
        raise InfraError(
            "redis-server not found on PATH: apt-get install redis-server (or brew install redis)"
        )
    return redis


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
    mvn = _find_maven()
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
        output = _last_lines(result.stdout + result.stderr, 25)
        raise InfraError(
            f"Maven could not fetch the Kafka broker jars (exit {result.returncode}); it needs "
            "network access to Maven Central (or a mirror in ~/.m2/settings.xml) once:\n"
            f"{' '.join(cmd)}\n{output}"
        )
    shutil.rmtree(p.libs, ignore_errors=True)
    staging.rename(p.libs)
    p.libs_marker.write_text(digest + "\n")
    log(f"kafka: {len(list(p.libs.glob('*.jar')))} jars ready ({time.monotonic() - started:.1f} s)")


# --------------------------------------------------------------------------------------
# Processes, ports, health
# --------------------------------------------------------------------------------------


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str | None:
    """The command line of ``pid``, or None when it is gone (or not ours to read)."""
    proc = Path("/proc") / str(pid) / "cmdline"
    if Path("/proc/self").exists():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
    try:  # no procfs (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which only waits for its parent to reap it, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _owned_pid(pidfile: Path, *markers: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive and its command line holds every
    marker (so a recycled pid of an unrelated process is never taken for ours)."""
    pid = _read_pid(pidfile)
    if pid is None or not _alive(pid):
        return None
    cmdline = _cmdline(pid)
    if cmdline is None or not all(marker in cmdline for marker in markers):
        return None
    return pid


def _kafka_markers(p: Paths) -> tuple[str, str]:
    return "kafka.Kafka", str(p.server_properties)


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (tries to bind it, like the
    service would; SO_REUSEADDR so a socket in TIME_WAIT does not count)."""
    bind = _bind_host(host)
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


def _port_busy_error(host: str, port: int, what: str, setting: str, example: str) -> InfraError:
    return InfraError(
        f"port {port} is in use by another process (not {what}): set {setting} to another "
        f"port (e.g. {example}) or stop that process (`ss -ltnp 'sport = :{port}'` names it)"
    )


def _tcp_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((_bind_host(host), port), timeout=timeout_s):
            return True
    except OSError:
        return False


def redis_ping(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether a Redis server answers PING on ``host:port`` (inline command, no client lib)."""
    try:
        with socket.create_connection((_bind_host(host), port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _run_sync(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also when the caller already runs an
    event loop (e.g. an async test): then it runs on a fresh loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make_coro())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="zmot-infra", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


async def _kafka_cluster(bootstrap: str, timeout_s: float) -> dict[str, Any]:
    """The cluster metadata (brokers, cluster id) as the broker reports it."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout_s * 1000))
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster: dict[str, Any] = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
        return cluster
    finally:
        await admin.close()


def kafka_healthy(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Whether a Kafka broker on ``host:port`` answers a metadata request with its brokers."""
    if not _tcp_open(host, port):
        return False
    try:
        cluster = _run_sync(lambda: _kafka_cluster(f"{_url_host(host)}:{port}", timeout_s))
    except Exception:
        return False
    return bool(cluster.get("brokers"))


def _last_lines(text: str, n: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(path: Path, n: int = 20, since: int = 0) -> str:
    """The last ``n`` lines written to a log file after byte ``since`` (Java stack frames
    left out), labelled, or '' if there are none."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(since if since <= fh.tell() else 0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if not line.startswith("\tat ")]
    if not "".join(lines).strip():
        return ""
    return f"--- last lines of {path} ---\n" + "\n".join(lines[-n:])


def _tails(*files: tuple[Path, int]) -> str:
    return "\n".join(t for t in (_tail(f, since=pos) for f, pos in files) if t) or "(no log output)"


def _stop_pid(pid: int, timeout_s: float) -> bool:
    """SIGTERM ``pid`` and wait; SIGKILL it after ``timeout_s``. True if it had to be killed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.05)
            return True
        time.sleep(0.05)
    return False


# A tiny launcher run by a second Python: it starts the service in a new session and exits at
# once, so the service is re-parented to init and never becomes a zombie of a long-lived
# caller (a test session), and no Popen object of ours outlives the call.
_SPAWN = """\
import subprocess, sys
out = open(sys.argv[1], "wb")
proc = subprocess.Popen(sys.argv[3:], cwd=sys.argv[2], stdin=subprocess.DEVNULL, stdout=out,
                        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
print(proc.pid)
"""


def _spawn_detached(cmd: list[str], cwd: Path, output: Path) -> int:
    """Start ``cmd`` fully detached (new session, output to ``output``); return its pid."""
    result = subprocess.run(
        [sys.executable, "-c", _SPAWN, str(output), str(cwd), *cmd],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise InfraError(f"could not start {cmd[0]}: {result.stderr.strip()[-2000:]}")
    return int(result.stdout.strip())


@contextlib.contextmanager
def _locked(p: Paths, log: Log) -> Iterator[None]:
    """Serialise ``zmot infra`` commands on one state dir (two ``up`` at once would both
    find the port free and start two brokers)."""
    p.root.mkdir(parents=True, exist_ok=True)
    gitignore = p.root / ".gitignore"
    if not gitignore.exists():  # keep broker data and jars out of `git status`
        gitignore.write_text("*\n")
    with p.lock.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another `zmot infra` command on {p.root} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------------------


def _kafka_local(settings: Settings, log: Log) -> KafkaEndpoints | None:
    ep = kafka_endpoints(settings)
    if _is_loopback(ep.host):
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


def _format_storage(java: str, p: Paths, log: Log) -> None:
    """Format the KRaft log dir once (static quorum: the voters come from server.properties)."""
    if (p.data / "meta.properties").is_file():
        return
    cluster_id = new_cluster_id()
    cmd = _java_cmd(
        java, p, "kafka.tools.StorageTool", "format", "--ignore-formatted",
        "-t", cluster_id, "-c", str(p.server_properties),
    )  # fmt: skip
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, cwd=p.kafka,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if result.returncode != 0:
        raise InfraError(
            f"formatting the Kafka storage in {p.data} failed (exit {result.returncode}):\n"
            f"{_last_lines(result.stdout + result.stderr, 20)}"
        )
    log(f"kafka: formatted {p.data} (cluster id {cluster_id})")


def _wait_kafka(
    ep: KafkaEndpoints, pid: int, p: Paths, timeout_s: float, log_offset: int = 0
) -> None:
    """Wait until the broker answers metadata requests; fail early if it exits."""
    deadline = time.monotonic() + timeout_s
    logs = ((p.broker_out, 0), (p.server_log, log_offset))
    while True:
        if not _alive(pid):
            raise InfraError(
                f"the Kafka broker (pid {pid}) exited during start-up; see {p.server_log} "
                f"(if its data in {p.data} is damaged, delete that directory to start empty)\n"
                f"{_tails(*logs)}"
            )
        if kafka_healthy(ep.host, ep.port, timeout_s=2.0):
            return
        if time.monotonic() > deadline:
            raise InfraError(
                f"the Kafka broker (pid {pid}) did not answer on {ep.address} within "
                f"{timeout_s:.0f} s (still running: `zmot infra down` stops it)\n"
                f"{_tails(*logs)}"
            )
        time.sleep(0.25)


def _up_kafka(settings: Settings, p: Paths, log: Log) -> None:
    ep = _kafka_local(settings, log)
    if ep is None:
        return
    pid = _owned_pid(p.kafka_pid, *_kafka_markers(p))
    if pid is not None:
        if not kafka_healthy(ep.host, ep.port):
            log(f"kafka: pid {pid} is starting, waiting for {ep.address}")
            _wait_kafka(ep, pid, p, KAFKA_START_TIMEOUT_S)
        log(f"kafka: already running (pid {pid}) on {ep.address}")
    else:
        p.kafka_pid.unlink(missing_ok=True)
        for port, setting_port in ((ep.port, ep.port), (ep.controller_port, ep.port)):
            if port_in_use(ep.bind_host, port):
                role = "" if port == ep.port else " (Kafka controller port = bootstrap port + 1)"
                raise _port_busy_error(
                    ep.host, port, f"the zmot broker of {p.root}{role}", "ZMOT_KAFKA_BOOTSTRAP",
                    f"ZMOT_KAFKA_BOOTSTRAP=127.0.0.1:{setting_port + 10}",
                )  # fmt: skip
        java = find_java()
        ensure_kafka_libs(p, log)
        _write_kafka_config(settings, p)
        _format_storage(java, p, log)
        started, log_offset = time.monotonic(), _size(p.server_log)
        cmd = _java_cmd(
            java, p, KAFKA_HEAP, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "kafka.Kafka", str(p.server_properties),
        )  # fmt: skip
        pid = _spawn_detached(cmd, cwd=p.kafka, output=p.broker_out)
        p.kafka_pid.write_text(f"{pid}\n")
        _wait_kafka(ep, pid, p, KAFKA_START_TIMEOUT_S, log_offset)
        log(f"kafka: started (pid {pid}) on {ep.address} in {time.monotonic() - started:.1f} s")
    wanted = {settings.events_topic: settings.topic_partitions, settings.dlq_topic: 1}
    actual = _run_sync(lambda: ensure_topics_async(settings.kafka_bootstrap, wanted))
    for name, count in actual.items():
        if count != wanted[name]:
            log(
                f"kafka: topic {name} has {count} partitions, the settings ask for "
                f"{wanted[name]} (zmot does not change existing topics)"
            )


async def ensure_topics_async(
    bootstrap: str, topics: Mapping[str, int], timeout_s: float = TOPIC_READY_TIMEOUT_S
) -> dict[str, int]:
    """Create each missing topic (name -> partitions, replication 1) and wait until every
    partition of each has a leader. Returns the partition count each topic has (an existing
    topic keeps its own). Creating first matters: a metadata request for a missing topic
    would auto-create it with the broker's default partition count."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        try:
            await asyncio.wait_for(admin.start(), 15)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise InfraError(
                f"Kafka at {bootstrap} is not reachable ({exc!r}): run `zmot infra up` with "
                "the same ZMOT_* settings"
            ) from exc
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1) for name, partitions in topics.items()]
        )
        for err in response.to_object()["topic_errors"]:
            if err["error_code"] not in (0, _TOPIC_ALREADY_EXISTS):
                raise InfraError(
                    f"cannot create Kafka topic {err['topic']!r}: "
                    f"{err['error_message'] or 'error code ' + str(err['error_code'])}"
                )
        deadline = time.monotonic() + timeout_s
        while True:
            described = await admin.describe_topics(list(topics))
            counts = {
                t["topic"]: len(t["partitions"])
                for t in described
                if t["error_code"] == 0
                and t["partitions"]
                and all(part["leader"] >= 0 for part in t["partitions"])
            }
            if set(counts) >= set(topics):
                return {name: counts[name] for name in topics}
            if time.monotonic() > deadline:
                missing = sorted(set(topics) - set(counts))
                raise InfraError(
                    f"Kafka topics {missing} have no leader after {timeout_s:.0f} s on "
                    f"{bootstrap}: is the broker healthy? (`zmot infra status`)"
                )
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


def ensure_topic(settings: Settings, name: str, partitions: int) -> None:
    """Create topic ``name`` with ``partitions`` partitions on the settings' broker if it is
    missing, and return once it is usable (every partition has a leader)."""
    if partitions < 1:
        raise InfraError(f"a topic needs at least one partition, got {partitions} for {name!r}")
    _run_sync(lambda: ensure_topics_async(settings.kafka_bootstrap, {name: partitions}))


def _down_kafka(settings: Settings, p: Paths, log: Log) -> None:
    pid = _owned_pid(p.kafka_pid, *_kafka_markers(p))
    if pid is None:
        p.kafka_pid.unlink(missing_ok=True)
        log("kafka: not running")
        return
    started = time.monotonic()
    killed = _stop_pid(pid, KAFKA_STOP_TIMEOUT_S)
    p.kafka_pid.unlink(missing_ok=True)
    how = "killed after SIGTERM timed out" if killed else "stopped"
    log(f"kafka: {how} (pid {pid}, {time.monotonic() - started:.1f} s)")


# --------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------


def _redis_local(settings: Settings, log: Log) -> tuple[str, int] | None:
    scheme = urlparse(settings.redis_url).scheme
    host, port = settings.redis_host_port
    if scheme != "redis":
        log(f"redis: {scheme}:// URLs are not managed by zmot infra; leaving Redis alone")
        return None
    if not _is_loopback(host):
        log(f"redis: {host}:{port} is not on this machine; zmot infra leaves it alone")
        return None
    return host, port


def _wait_redis(host: str, port: int, p: Paths, timeout_s: float, log_offset: int = 0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        pid = _owned_pid(p.redis_pid, "redis-server")
        if pid is not None and redis_ping(host, port):
            return pid
        if time.monotonic() > deadline:
            raise InfraError(
                f"redis-server did not answer PING on {host}:{port} within {timeout_s:.0f} s\n"
                f"{_tails((p.redis_log, log_offset))}"
            )
        time.sleep(0.05)


def _up_redis(settings: Settings, p: Paths, log: Log) -> None:
    local = _redis_local(settings, log)
    if local is None:
        return
    host, port = local
    pid = _owned_pid(p.redis_pid, "redis-server")
    if pid is not None:
        if not redis_ping(host, port):
            pid = _wait_redis(host, port, p, REDIS_START_TIMEOUT_S)
        log(f"redis: already running (pid {pid}) on {host}:{port}")
        return
    p.redis_pid.unlink(missing_ok=True)
    if port_in_use(host, port):
        raise _port_busy_error(
            host, port, f"the zmot Redis of {p.root}", "ZMOT_REDIS_URL",
            f"ZMOT_REDIS_URL=redis://127.0.0.1:{port + 10 if port < 65525 else port - 10}/0",
        )  # fmt: skip
    redis_server = _find_redis_server()
    p.redis.mkdir(parents=True, exist_ok=True)
    started, log_offset = time.monotonic(), _size(p.redis_log)
    cmd = [
        redis_server, "--bind", _bind_host(host), "--port", str(port),
        "--daemonize", "yes", "--save", "", "--appendonly", "no",
        "--dir", str(p.redis), "--pidfile", str(p.redis_pid), "--logfile", str(p.redis_log),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"could not run {redis_server}: {exc}") from exc
    if result.returncode != 0:
        raise InfraError(
            f"redis-server failed to start (exit {result.returncode}):\n"
            f"{_last_lines(result.stdout + result.stderr, 20)}\n{_tails((p.redis_log, log_offset))}"
        )
    pid = _wait_redis(host, port, p, REDIS_START_TIMEOUT_S, log_offset)
    log(f"redis: started (pid {pid}) on {host}:{port} in {time.monotonic() - started:.1f} s")


def _down_redis(settings: Settings, p: Paths, log: Log) -> None:
    pid = _owned_pid(p.redis_pid, "redis-server")
    if pid is None:
        p.redis_pid.unlink(missing_ok=True)
        log("redis: not running")
        return
    killed = _stop_pid(pid, REDIS_STOP_TIMEOUT_S)
    p.redis_pid.unlink(missing_ok=True)
    log(f"redis: {'killed after SIGTERM timed out' if killed else 'stopped'} (pid {pid})")


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def up(settings: Settings, *, log: Log = print) -> None:
    """Start (or find running) the local Kafka broker and Redis of ``settings`` and create
    the events and dead-letter topics. Idempotent. Raises InfraError with what to do when a
    tool is missing, a port belongs to another process, or a service does not come up."""
    p = paths(settings)
    with _locked(p, log):
        _up_kafka(settings, p, log)
        _up_redis(settings, p, log)


def down(settings: Settings, *, log: Log = print) -> None:
    """Stop the broker and Redis that ``up`` started for this state dir (SIGTERM, SIGKILL
    after a timeout). Idempotent; data and logs stay in ``state_dir``."""
    p = paths(settings)
    with _locked(p, log):
        _down_kafka(settings, p, log)
        _down_redis(settings, p, log)


def wipe(settings: Settings, *, log: Log = print) -> None:
    """``down``, then delete the broker's data and logs and Redis's dir, for a fresh start.
    The Maven-resolved jars (a cache, not state) and other files in ``state_dir`` stay."""
    p = paths(settings)
    with _locked(p, log):
        _down_kafka(settings, p, log)
        _down_redis(settings, p, log)
        for path in (p.data, p.kafka_logs, p.redis):
            shutil.rmtree(path, ignore_errors=True)
        for path in (p.broker_out, p.server_properties, p.log4j):
            path.unlink(missing_ok=True)
    log(f"wiped Kafka and Redis data under {p.root}")


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    """State of the two services: ``running`` (our process is alive), ``pid``, ``address``,
    ``healthy`` (the address answers a Kafka metadata request / Redis PING, whoever serves
    it), ``managed`` (the address is local, so ``up``/``down`` handle it) and ``log``."""
    p = paths(settings)
    ep = kafka_endpoints(settings)
    kafka_pid = _owned_pid(p.kafka_pid, *_kafka_markers(p))
    redis_host, redis_port = settings.redis_host_port
    redis_managed = urlparse(settings.redis_url).scheme == "redis" and _is_loopback(redis_host)
    redis_pid = _owned_pid(p.redis_pid, "redis-server")
    return {
        "kafka": {
            "running": kafka_pid is not None,
            "pid": kafka_pid,
            "address": ep.address,
            "healthy": kafka_healthy(ep.host, ep.port),
            "managed": _is_loopback(ep.host),
            "log": str(p.server_log),
        },
        "redis": {
            "running": redis_pid is not None,
            "pid": redis_pid,
            "address": f"{redis_host}:{redis_port}",
            "healthy": urlparse(settings.redis_url).scheme == "redis"
            and redis_ping(redis_host, redis_port),
            "managed": redis_managed,
            "log": str(p.redis_log),
        },
    }
