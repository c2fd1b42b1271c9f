"""Where training histories come from: an event file, or the events topic (`--from-kafka`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from recommender.core.errors import ZmotError
from recommender.core.events import LoadReport, in_user_time_order, load_events
from recommender.core.settings import get_settings


def read_history(
    events: Path | None, from_kafka: bool, since: str | None, log: Callable[[str], None]
) -> tuple[LoadReport, str]:
    """The training history (a file, or the events topic) and where it came from."""
    if (events is None) == (not from_kafka):
        raise ZmotError("give exactly one of --events FILE and --from-kafka")
    if events is not None:
        if since is not None:
            raise ZmotError("--since goes with --from-kafka")
        report = load_events(events)
        for number, reason in report.errors[:10]:
            log(f"{events}:{number}: skipped: {reason}")
        if report.n_bad > 10:
            log(f"... and {report.n_bad - 10} more bad lines")
        return report, str(events)
    from recommender.adapters.kafka import kafka_auth, read_topic_events, run_sync

    settings = get_settings()
    start = None if since is None else time.time() - duration_s(since)
    read, bad = run_sync(
        lambda: read_topic_events(
            settings.kafka_bootstrap, settings.events_topic, since=start, auth=kafka_auth(settings)
        )
    )
    for reason in bad[:10]:
        log(f"skipped: {reason}")
    if len(bad) > 10:
        log(f"... and {len(bad) - 10} more bad messages")
    log(f"read {len(read)} events from {settings.events_topic} ({len(bad)} bad skipped)")
    report = LoadReport(in_user_time_order(read))
    return report, f"kafka:{settings.events_topic}" + (f" since {since}" if since else "")


def duration_s(text: str, option: str = "--since") -> float:
    """Seconds of ``14d``, ``36h``, ``90m`` or ``30s`` (``option`` names it in errors)."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    number, unit = text[:-1], text[-1:]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise ZmotError(f"{option} {text!r}: expected a number and d, h, m or s, e.g. 14d")
    return value * units[unit]
