"""`zmot ope --decisions FILE|--from-kafka --candidate CONFIG [--json]`: a candidate policy's
reward rate estimated from logged decisions (IPS and SNIPS with 95% intervals, effective
sample size)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml

from cli.history import duration_s
from cli.options import Since
from recommender.core.decision_log import (
    LoggedDecision,
    Reward,
    decode_record,
    logged_rewards,
)
from recommender.core.errors import ConfigError
from recommender.core.ope import Logged, evaluate, table_policy
from recommender.core.settings import get_settings


def read_logged(path: Path) -> list[Logged]:
    """One logged decision per JSON line: ``{"offer_id", "probability", "reward"}`` (the
    first slot's offer and probability as the decision log has them; reward 1 for a click or
    conversion, else 0). A bad line is refused with its number."""
    out: list[Logged] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(
                Logged(str(row["offer_id"]), float(row["probability"]), float(row["reward"]))
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: not a logged decision ({exc!r})") from None
    return out


def read_logged_from_kafka(
    since: str | None, reward: Reward, window_hours: float | None, log: Callable[[str], None]
) -> list[Logged]:
    """The decision log (ZMOT_DECISIONS_TOPIC) joined with the feedback events
    (ZMOT_EVENTS_TOPIC) that followed, both as far back as retention or ``since``."""
    from recommender.adapters.kafka import (
        kafka_auth,
        read_topic_events,
        read_topic_values,
        run_sync,
    )

    settings = get_settings()
    if not settings.decisions_topic:
        raise ConfigError("ZMOT_DECISIONS_TOPIC is empty: the API logs no decisions to Kafka")
    start = None if since is None else time.time() - duration_s(since)
    auth = kafka_auth(settings)
    bootstrap = settings.kafka_bootstrap
    raw = run_sync(
        lambda: read_topic_values(bootstrap, settings.decisions_topic, since=start, auth=auth)
    )
    decisions: list[LoggedDecision] = []
    bad: list[str] = []
    for where, value, _ in raw:  # one decision per record, or JSON lines of them
        found, reasons = decode_record(value)
        decisions.extend(found)
        bad.extend(f"{where}: {reason}" for reason in reasons)
    events, bad_events = run_sync(
        lambda: read_topic_events(bootstrap, settings.events_topic, since=start, auth=auth)
    )
    for reason in (bad + bad_events)[:10]:
        log(f"skipped: {reason}")
    window_s = (window_hours or settings.attribution_hours) * 3600.0
    logged = logged_rewards(decisions, events, reward=reward, window_s=window_s)
    log(
        f"read {len(decisions)} decisions from {settings.decisions_topic} ({len(bad)} bad "
        f"skipped, {len(decisions) - len(logged)} without offers) and {len(events)} events "
        f"from {settings.events_topic}; reward: {reward} within {window_s / 3600:g} h"
    )
    return logged


def register(app: typer.Typer) -> None:
    @app.command()
    def ope(
        candidate: Annotated[
            Path, typer.Option(help="YAML: policy: {offer_id: probability, ...}.")
        ],
        decisions: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(help='JSON lines: {"offer_id", "probability", "reward"}.'),
        ] = None,
        from_kafka: Annotated[
            bool,
            typer.Option(
                "--from-kafka",
                help="Read the decision log (ZMOT_DECISIONS_TOPIC) and the events that followed "
                "(ZMOT_EVENTS_TOPIC) from the broker instead of --decisions.",
            ),
        ] = False,
        since: Since = None,
        reward: Annotated[
            str,
            typer.Option(
                help="With --from-kafka: what earns the reward, `click` (a click on the first "
                "offer) or `conversion` (a purchase of its item)."
            ),
        ] = "click",
        window_hours: Annotated[
            Optional[float],  # noqa: UP045
            typer.Option(
                min=0.0,
                help="With --from-kafka: how long after a decision its reward may come "
                "(default ZMOT_ATTRIBUTION_HOURS).",
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Estimate a candidate policy's click or conversion rate from logged decisions."""
        if (decisions is None) == (not from_kafka):
            raise ConfigError("give exactly one of --decisions FILE and --from-kafka")
        if reward not in ("click", "conversion"):
            raise ConfigError(f"--reward {reward!r}: expected click or conversion")
        if decisions is not None and since is not None:
            raise ConfigError("--since goes with --from-kafka")
        try:
            data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the candidate {candidate}: {exc}") from None
        policy = table_policy(data, str(candidate))
        if decisions is not None:
            logged = read_logged(decisions)
        else:
            chosen: Reward = "click" if reward == "click" else "conversion"
            logged = read_logged_from_kafka(
                since, chosen, window_hours, lambda line: typer.echo(line, err=True)
            )
        result = evaluate(logged, policy)
        if as_json:
            typer.echo(json.dumps(result.to_dict()))
            return
        typer.echo(
            f"{result.n} logged decisions (logged rate {result.logged_rate:.4f}"
            + (f", {result.unsupported} with probability 0 left out" if result.unsupported else "")
            + ")"
        )
        for name, est in (("IPS", result.ips), ("SNIPS", result.snips)):
            typer.echo(f"{name:<6} {est.value:.4f}  95% [{est.low:.4f}, {est.high:.4f}]")
        typer.echo(f"effective sample size {result.effective_sample_size:.1f}")
