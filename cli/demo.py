"""`zmot demo`: the whole path on this machine, from nothing to a printed next best offer."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from zmot_client import Client

from cli import processes
from cli.replay import produce
from recommender.adapters import localstack
from recommender.adapters.kafka import group_lag, kafka_auth, total_lag
from recommender.core.errors import ZmotError
from recommender.core.settings import Settings

DEMO_QUERY = "fernseher reparatur"


def stack_env(settings: Settings, data: Path, model: Path) -> dict[str, str]:
    """Environment for the worker and API processes of the demo."""
    return settings.model_copy(
        update={
            "catalog_path": data / "catalog.jsonl",
            "offers_path": data / "offers.jsonl",
            "model_dir": model,
            "demo_shop": True,
        }
    ).to_env()


def wait_caught_up(settings: Settings, log: Callable[[str], None], timeout_s: float) -> int:
    """Block until the worker's group has committed every message; return the end offset sum."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while True:
        lag = asyncio.run(
            group_lag(
                settings.kafka_bootstrap,
                settings.consumer_group,
                settings.events_topic,
                auth=kafka_auth(settings),
            )
        )
        behind = total_lag(lag)
        if behind == 0 and lag:
            return sum(end for end, _ in lag.values())
        if behind != last:
            log(f"worker lag: {behind} messages")
            last = behind
        if time.monotonic() > deadline:
            raise ZmotError(
                f"the worker did not catch up within {timeout_s:.0f} s ({behind} messages behind);"
                f" see {processes.log_file(settings, 'worker')}"
            )
        time.sleep(1.0)


def wait_http(url: str, timeout_s: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ZmotError(
        f"{what} did not become ready at {url} within {timeout_s:.0f} s; see {log_path}"
    )


def run_demo(
    settings: Settings,
    *,
    users: int,
    seed: int,
    log: Callable[[str], None],
    show: Callable[[str], None],
) -> None:
    """Infra, data, model, worker, API, replay, then offers for a fresh repair searcher."""
    from recommender.core.catalog import Catalog
    from recommender.core.events import load_events
    from recommender.core.replay import Profiler
    from recommender.core.runtime import profile_params
    from recommender.offline.hybrid import train_served
    from recommender.offline.synthetic import generate
    from recommender.offline.training import TrainConfig

    # A demo starts from a clean stack: replaying the same history into old profiles would
    # count it twice (the offset fence guards redelivery, not a second copy of the data).
    for name in ("api", "worker"):
        processes.stop(settings, name)
    localstack.wipe(settings, log=log)
    localstack.up(settings, log=log)
    data = settings.state_dir / "demo"
    model_dir = data / "model"
    log(f"generating a demo shop with {users} shoppers in {data}")
    generate(data, users=users, seed=seed, progress=True)
    catalog = Catalog.load(data / "catalog.jsonl")
    history = load_events(data / "events.jsonl")
    params = profile_params(settings)
    log("training the model")
    profiler = Profiler(catalog, params=params)
    model = train_served(history.events, catalog, profiler, TrainConfig(), progress=True, log=log)
    model.save(model_dir)
    log(f"model {model.version}: {model.info['n_contexts']} training contexts")

    env = stack_env(settings, data, model_dir)
    processes.start(settings, "worker", ["worker"], env)
    processes.start(settings, "api", ["api"], env)
    base = f"http://{settings.api_host}:{settings.api_port}"
    wait_http(f"{base}/readyz", 60, "the API", processes.log_file(settings, "api"))

    log(f"replaying {len(history.events)} demo events through Kafka")
    sent = produce(settings, history.events)
    log(f"sent {sent} events; waiting for the worker to catch up")
    wait_caught_up(settings, log, timeout_s=600)

    user = f"demo-{uuid.uuid4().hex[:8]}"
    with Client(base, timeout=10) as client:  # the demo API is open (loopback)
        client.send_events([{"user_id": user, "type": "search", "query": DEMO_QUERY}])
        deadline = time.monotonic() + 30
        while True:
            answer = client.next_best_offer(user, k=3)
            if not answer.fallback or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    show(f"\nA new shopper {user} searched {DEMO_QUERY!r}. Next best offers:")
    for i, offer in enumerate(answer.offers, start=1):
        show(f"  {i}. {offer.title}  [{offer.category}]  score={offer.score:.3f}")
        for reason in offer.reasons:
            show(f"       because {reason}")
    if answer.fallback:
        show("  (fallback: the profile was not personalised in time; see the worker log)")
    show(f"\nStack running: API {base}/docs  (profile: {base}/v1/users/{user}/profile)")
    show(f"Example shop (tracker + offer widget): {base}/demo/shop   ops page: {base}/ops")
    show(f"Logs: {settings.state_dir / 'logs'}   Stop everything: make stop")
    if settings.api_keys_file is None:
        show(
            "The API is open because it listens on loopback only. To require API keys:\n"
            "  .venv/bin/zmot keys create --name shop --scopes events:write,offers:read "
            "--file keys.yaml\n"
            "  then start the API with ZMOT_API_KEYS_FILE=keys.yaml and send "
            "'Authorization: Bearer <key>' (scopes, erasure, consent: SECURITY.md)"
        )


def stop_all(settings: Settings, log: Callable[[str], None]) -> None:
    for name in ("api", "worker"):
        if processes.stop(settings, name):
            log(f"stopped {name}")
    localstack.down(settings, log=log)
