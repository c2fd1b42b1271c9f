"""Where ``zmot infra`` keeps its files under ``Settings.state_dir``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recommender.core.settings import Settings


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

    @property
    def redis_cluster(self) -> Path:
        """One directory per node of ``zmot infra up --redis-cluster`` (named by its port)."""
        return self.root / "redis-cluster"


def paths(settings: Settings) -> Paths:
    """The files of ``settings.state_dir``, made absolute (the broker runs in another cwd)."""
    return Paths(Path(settings.state_dir).expanduser().resolve())
