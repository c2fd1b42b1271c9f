"""`zmot profiles migrate`: rewrite profiles stored by an older worker (one hash each) packed."""

from __future__ import annotations

import asyncio

import typer
from redis.exceptions import RedisError

from recommender.core.errors import ConfigError
from recommender.core.settings import Settings, get_settings, redact_url


async def migrate_profiles(settings: Settings) -> int:
    """Rewrite every hash profile under the settings' prefix packed; how many were."""
    from recommender.adapters.redis_store import ProfileStore, connect

    client = connect(settings.redis_url)
    try:
        store = ProfileStore(
            client,
            settings.redis_prefix,
            settings.profile_ttl_days * 86400.0,
            pack_level=settings.profile_pack_level,
        )
        await store.check()
        return await store.migrate()
    finally:
        await client.aclose()


def register(app: typer.Typer) -> None:
    """Add the profiles commands to the zmot CLI."""
    profiles = typer.Typer(help="Profiles in Redis.", no_args_is_help=True)
    app.add_typer(profiles, name="profiles")

    @profiles.command("migrate")
    def migrate() -> None:
        """Rewrite every profile still stored as a hash (by a worker before the packed format)
        in the packed form. Safe while workers run: each rewrite is fenced, and readers take
        both forms meanwhile; a profile's next event rewrites it anyway."""
        settings = get_settings()
        try:
            done = asyncio.run(migrate_profiles(settings))
        except (RedisError, OSError) as exc:
            raise ConfigError(
                f"cannot migrate profiles in Redis at {redact_url(settings.redis_url)}: {exc}"
            ) from exc
        typer.echo(f"rewrote {done} profile(s) packed under {settings.redis_prefix}profile:*")
