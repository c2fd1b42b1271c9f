"""Shared fixtures.

Integration tests (marked ``integration``) talk to the real Kafka broker and Redis that
``make test`` starts with ``zmot infra up`` (addresses from the ``ZMOT_*`` environment). Each
test gets its own topics, consumer group and Redis key prefix, so tests never see each other's
data.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The repository, and the Python client (its own package, importable without installing it).
for path in (ROOT, ROOT / "clients" / "python"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from recommender.adapters.kafka import ensure_topic  # noqa: E402
from recommender.adapters.localstack import tcp_open  # noqa: E402
from recommender.core.settings import Settings  # noqa: E402
from tests.support.kafka import caught_up  # noqa: E402, F401  (a fixture for all)
from tests.support.processes import worker  # noqa: E402, F401  (a fixture for all)
from tests.support.redis_server import redis_server  # noqa: E402, F401  (a fixture for all)

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(base_settings: Settings) -> Settings:
    """The running Kafka + Redis; fails (never skips) when they are not up."""
    kafka = base_settings.kafka_host_port
    redis = base_settings.redis_host_port
    missing = [
        f"{n} at {h}:{p}"
        for n, (h, p) in (("Kafka", kafka), ("Redis", redis))
        if not tcp_open(h, p, timeout_s=1.0)
    ]
    if missing:
        pytest.fail(
            "integration test needs " + " and ".join(missing) + ": run `make test` "
            "(or `zmot infra up` with the same ZMOT_* settings)"
        )
    return base_settings


@pytest.fixture
def unique() -> Callable[[str], str]:
    """A name no other test uses: unique('topic') -> 'topic-3f2a...'."""
    return lambda stem: f"{stem}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def isolated(stack: Settings, unique: Callable[[str], str]) -> Iterator[Settings]:
    """Settings with this test's own topics, consumer group and Redis prefix."""
    name = unique("t")
    settings = stack.model_copy(
        update={
            "events_topic": f"zmot.events.{name}",
            "dlq_topic": f"zmot.events.dlq.{name}",
            "decisions_topic": f"zmot.decisions.{name}",
            "consumer_group": f"zmot-worker-{name}",
            "redis_prefix": f"zmot:{name}:",
        }
    )
    ensure_topic(settings.kafka_bootstrap, settings.events_topic, settings.topic_partitions)
    ensure_topic(settings.kafka_bootstrap, settings.dlq_topic, 1)
    yield settings


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    return asyncio.DefaultEventLoopPolicy()


class DemoShop:
    """A generated demo shop and the model `zmot train` writes for it by default, hybrid
    tables included (once per test session)."""

    def __init__(self, root: Path) -> None:
        from recommender.core.catalog import Catalog
        from recommender.core.events import load_events
        from recommender.core.replay import Profiler
        from recommender.offline.hybrid import train_served
        from recommender.offline.synthetic import generate
        from recommender.offline.training import TrainConfig

        self.data = root / "data"
        self.model_dir = root / "model"
        generate(self.data, users=2000, seed=7)
        self.catalog = Catalog.load(self.data / "catalog.jsonl")
        self.events = load_events(self.data / "events.jsonl").events
        self.model = train_served(self.events, self.catalog, Profiler(self.catalog), TrainConfig())
        self.model.save(self.model_dir)

    def files(self) -> dict[str, Path]:
        """The settings naming this shop's catalog, offers and model."""
        return {
            "catalog_path": self.data / "catalog.jsonl",
            "offers_path": self.data / "offers.jsonl",
            "model_dir": self.model_dir,
        }

    def serving(self, settings: Settings) -> Settings:
        """``settings`` serving this shop (catalog, offers, model)."""
        return settings.model_copy(update=self.files())


@pytest.fixture(scope="session")
def demo_shop(tmp_path_factory: pytest.TempPathFactory) -> DemoShop:
    return DemoShop(tmp_path_factory.mktemp("demo-shop"))
