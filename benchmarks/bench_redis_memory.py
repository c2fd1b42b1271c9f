"""Redis memory per profile: realistic profiles written by the worker's own store, measured.

What it does:

1. makes a demo shop with ``zmot demo-data`` (``--users``, default 10,000 shoppers) and
   replays its history with the worker's :class:`~recommender.core.replay.Profiler` (every
   event through the one profile function, so the profiles hold what a live one holds:
   features up to ``ZMOT_PROFILE_TOP_N``, purchases, remembered touches, and whatever else the
   profile keeps);
2. writes them to Redis with :class:`~recommender.adapters.redis_store.ProfileStore` under a
   key prefix of its own;
3. reads ``MEMORY USAGE`` of every key (``SAMPLES 0``: exact), ``OBJECT ENCODING`` and the
   hash length, and the growth of ``used_memory`` over the write;
4. prints bytes per profile (mean, p50, p95, and for the profiles that reached 64 features),
   the extrapolation to 1M profiles, the share of hashes that left the compact ``listpack``
   encoding (the server's ``hash-max-listpack-entries`` / ``-value``), and appends them to
   ``BENCHMARKS.md`` with the machine, date and command; deletes its keys.

Redis comes from the ``ZMOT_*`` settings (``make bench`` starts the test stack).

    python benchmarks/bench_redis_memory.py [--users 10000] [--seed 1] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import append_section, command_line, machine, now_utc, say  # noqa: E402

GIB = 1024**3


def profiles_of_a_shop(work: Path, users: int, seed: int) -> dict[str, object]:
    """The live profiles of a generated shop's whole history (user id -> Profile)."""
    from recommender.core.catalog import Catalog
    from recommender.core.events import load_events
    from recommender.core.replay import Profiler
    from recommender.core.runtime import profile_params
    from recommender.core.settings import get_settings

    zmot = str(Path(sys.executable).with_name("zmot"))
    data = work / "shop"
    say(f"generating a demo shop of {users:,} shoppers ...")
    subprocess.run(
        [zmot, "demo-data", "--out", str(data), "--users", str(users), "--seed", str(seed)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    catalog = Catalog.load(data / "catalog.jsonl")
    events = load_events(data / "events.jsonl").events
    say(f"replaying {len(events):,} events through the worker's profile function ...")
    profiler = Profiler(catalog, params=profile_params(get_settings()))
    return dict(profiler.replay(events))


async def measure(profiles: dict[str, object], prefix: str) -> dict[str, object]:
    from recommender.adapters.redis_store import ProfileStore, connect
    from recommender.core.settings import get_settings

    settings = get_settings()
    client = connect(settings.redis_url)
    store = ProfileStore(client, prefix, ttl_s=3600.0)
    try:
        await store.check()
        config = await client.config_get("hash-max-listpack-*")
        before = int((await client.info("memory"))["used_memory"])
        users = list(profiles)
        for start in range(0, len(users), 1000):
            chunk = users[start : start + 1000]
            await store.put_many([(u, None, profiles[u]) for u in chunk])  # type: ignore[misc]
        after = int((await client.info("memory"))["used_memory"])
        sizes, fields, encodings = [], [], []
        for start in range(0, len(users), 1000):
            async with client.pipeline(transaction=False) as pipe:
                for user in users[start : start + 1000]:
                    pipe.memory_usage(store.key(user), samples=0)
                    pipe.object("encoding", store.key(user))
                    pipe.hlen(store.key(user))
                got = await pipe.execute()
            sizes += got[0::3]
            encodings += [e.decode() if isinstance(e, bytes) else str(e) for e in got[1::3]]
            fields += got[2::3]
        return {
            "config": {k.decode() if isinstance(k, bytes) else k: v for k, v in config.items()},
            "used_memory_delta": after - before,
            "sizes": np.array(sizes, dtype=np.float64),
            "fields": np.array(fields, dtype=np.float64),
            "encodings": encodings,
        }
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="shoppers in the generated shop")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="zmot-mem-") as tmp:
        profiles = profiles_of_a_shop(Path(tmp), args.users, args.seed)
    n_features = np.array([len(pr.weights) for pr in profiles.values()])  # type: ignore[attr-defined]
    got = asyncio.run(measure(profiles, "zmot-bench-mem:"))
    sizes, fields = got["sizes"], got["fields"]
    assert isinstance(sizes, np.ndarray) and isinstance(fields, np.ndarray)
    encodings = got["encodings"]
    assert isinstance(encodings, list)
    full = sizes[n_features >= 64]
    compact = sum(e == "listpack" for e in encodings) / max(1, len(encodings))
    per = float(sizes.mean())
    lines = [
        f"## Redis memory per profile ({now_utc()})",
        "",
        f"- command: `{command_line()}`",
        f"- machine: {machine()}",
        f"- server: {got['config']}",
        "",
        "| profiles | fields per hash (mean / max) | bytes per profile (mean / p50 / p95) "
        "| with 64 features: bytes (n) | GiB per 1M profiles | listpack share "
        "| used_memory growth per profile |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(sizes):,} | {fields.mean():.1f} / {fields.max():.0f} "
        f"| {per:,.0f} / {np.percentile(sizes, 50):,.0f} / {np.percentile(sizes, 95):,.0f} "
        f"| {full.mean() if len(full) else float('nan'):,.0f} ({len(full):,}) "
        f"| {per * 1e6 / GIB:.2f} | {compact:.1%} "
        f"| {int(got['used_memory_delta']) / max(1, len(sizes)):,.0f} |",  # type: ignore[call-overload]
    ]
    text = "\n".join(lines)
    say(text)
    if not args.no_write:
        append_section(text)


if __name__ == "__main__":
    main()
