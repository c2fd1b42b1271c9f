"""Options more than one `zmot` command takes (kept light: every command imports this)."""

from __future__ import annotations

from typing import Annotated

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
