"""``zmot migrate-keys``: rename the keys of zmot's first key scheme to the hash-tagged one.

zmot before Redis Cluster support named keys without hash tags (``<prefix>profile:<user>``,
``<prefix>agg:<partition>``...; :mod:`recommender.adapters.keys` has both schemes). This walks
every such key under the prefix with SCAN and renames it with RENAMENX (atomic, TTL kept) to its
new name, in pipelined batches, then records the new scheme in ``<prefix>layout``, after which
the worker and the API start. Run it once, with the worker and the API stopped, on the single
Redis that holds the data; a second run finds nothing to do. A key whose new name already exists
is left as it is and reported (the run then fails, and does not record the new scheme).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from recommender.adapters.keys import LAYOUT_VERSION, layout_key, old_to_new, scan_pattern
from recommender.adapters.redis_client import RedisClient, is_cluster
from recommender.core.errors import ConfigError

KINDS = ("profile", "links", "udec", "person", "agg")
"""Key kinds whose names changed."""

BATCH = 1000
"""Keys renamed per round trip."""


@dataclass
class Migration:
    """What a run found: keys per kind renamed (or, dry, to rename) and keys left as they
    were because their new name was taken."""

    renamed: dict[str, int]
    conflicts: list[str]

    @property
    def total(self) -> int:
        return sum(self.renamed.values())


async def migrate_keys(
    client: RedisClient, prefix: str, *, dry_run: bool = False, log: Callable[[str], None]
) -> Migration:
    """Rename every old-scheme key under ``prefix`` (see the module docstring)."""
    if is_cluster(client):
        raise ConfigError(
            "migrate-keys renames keys on the single Redis that holds them (RENAMENX cannot "
            "move a key to another slot): run it there without ZMOT_REDIS_CLUSTER, then move "
            "the keys into the cluster (README, Scaling out / Redis Cluster)"
        )
    result = Migration({kind: 0 for kind in KINDS}, [])
    for kind in KINDS:
        batch: list[tuple[str, str]] = []
        async for raw in client.scan_iter(match=scan_pattern(prefix, kind), count=BATCH):
            old = raw.decode() if isinstance(raw, bytes) else str(raw)
            new = old_to_new(prefix, old)
            if new is not None:
                batch.append((old, new))
            if len(batch) >= BATCH:
                await _rename(client, batch, kind, result, dry_run)
                batch = []
        await _rename(client, batch, kind, result, dry_run)
        if result.renamed[kind]:
            verb = "to rename" if dry_run else "renamed"
            log(f"{kind}: {result.renamed[kind]} keys {verb}")
    if not dry_run and not result.conflicts:
        await client.set(layout_key(prefix), LAYOUT_VERSION)
    return result


async def _rename(
    client: RedisClient,
    batch: list[tuple[str, str]],
    kind: str,
    result: Migration,
    dry_run: bool,
) -> None:
    if not batch:
        return
    if dry_run:
        result.renamed[kind] += len(batch)
        return
    async with client.pipeline(transaction=False) as pipe:
        for old, new in batch:
            pipe.renamenx(old, new)
        done = await pipe.execute()
    for (old, _), ok in zip(batch, done, strict=True):
        if ok:
            result.renamed[kind] += 1
        else:
            result.conflicts.append(old)


__all__ = ["Migration", "migrate_keys"]
