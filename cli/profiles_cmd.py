"""`zmot profiles migrate`: rewrite profiles stored by older workers (a hash each, or a packed
value of format B/Z) in the compact format."""

from __future__ import annotations

import asyncio

import typer
from redis.exceptions import RedisError

from recommender.core.errors import ConfigError
from recommender.core.settings import Settings, get_settings, redact_url


async def migrate_profiles(settings: Settings) -> int:
    """Rewrite every profile of an older format under the settings' prefix compact; how
    many were."""
    from recommender.adapters.redis_client import client_for
    from recommender.adapters.redis_store import ProfileStore

    client = client_for(settings)
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
        """Rewrite every profile still stored in an older format (a hash, or a packed value of
        format B/Z) in the compact one. Safe while workers run: each rewrite is fenced, and
        readers take every form meanwhile; a profile's next event rewrites it anyway."""
        settings = get_settings()
        try:
            done = asyncio.run(migrate_profiles(settings))
        except (RedisError, OSError) as exc:
            raise ConfigError(
                f"cannot migrate profiles in Redis at {redact_url(settings.redis_url)}: {exc}"
            ) from exc
        typer.echo(f"rewrote {done} profile(s) compact under {settings.redis_prefix}profile:*")
