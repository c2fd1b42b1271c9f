"""`zmot migrate-keys`: one-time rename of Redis keys to the hash-tagged scheme (Redis Cluster)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from recommender.core.errors import ZmotError
from recommender.core.settings import Settings, get_settings, redact_url


async def run_migration(settings: Settings, dry_run: bool) -> int:
    """Migrate ZMOT_REDIS_URL's keys under ZMOT_REDIS_PREFIX; the number of keys renamed."""
    from recommender.adapters.migrate_keys import migrate_keys
    from recommender.adapters.redis_client import check, client_for, close

    client = client_for(settings)
    try:
        await check(client, settings)
        result = await migrate_keys(
            client, settings.redis_prefix, dry_run=dry_run, log=lambda m: typer.echo(m, err=True)
        )
    finally:
        await close(client)
    if result.conflicts:
        shown = ", ".join(repr(k) for k in result.conflicts[:5])
        raise ZmotError(
            f"{len(result.conflicts)} keys not renamed because their new name exists (e.g. "
            f"{shown}): was a new worker or API already running on this Redis? Decide which "
            "to keep, delete the other, and run again"
        )
    return result.total


def register(app: typer.Typer) -> None:
    """Add migrate-keys to the zmot CLI."""

    @app.command("migrate-keys")
    def migrate_keys_command(
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Count the keys to rename; change nothing.")
        ] = False,
    ) -> None:
        """Rename the Redis keys of zmot's older key scheme to the hash-tagged one (once, with
        the worker and the API stopped; README, Scaling out / Redis Cluster)."""
        settings = get_settings()
        total = asyncio.run(run_migration(settings, dry_run))
        where = f"{redact_url(settings.redis_url)} under {settings.redis_prefix!r}"
        if dry_run:
            typer.echo(f"{total} keys to rename at {where}")
        else:
            typer.echo(f"renamed {total} keys at {where}; key scheme recorded")
