"""Options more than one `zmot` command takes (kept light: every command imports this)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

RespectPrivacy = Annotated[
    bool,
    typer.Option(
        "--respect-privacy",
        help="Leave out erased people (up to their erasure) and people without consent, read "
        "from ZMOT_REDIS_URL.",
    ),
]
"""``--respect-privacy`` of train, evaluate and tune."""

EventsFile = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--events", help="Event history, JSON lines in the contract (or --from-kafka)."),
]
FromKafka = Annotated[
    bool,
    typer.Option(
        "--from-kafka",
        help="Read the history from ZMOT_EVENTS_TOPIC (as far back as its retention) instead "
        "of --events.",
    ),
]
Since = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(help="With --from-kafka: only records of the last N d/h/m/s (14d, 36h)."),
]
RegistryDir = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--registry", help="Model registry folder (default: ZMOT_MODEL_DIR)."),
]
"""Where ``train`` and ``retrain`` read their history (:mod:`cli.history`) and which registry
they (and ``zmot model``) use."""
