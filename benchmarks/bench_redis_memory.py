"""Redis memory per profile: realistic profiles written by the worker's own store, measured.

What it does:

1. makes a demo shop with ``zmot demo-data`` (``--users``, default 10,000 shoppers) and
   replays its history with the worker's :class:`~recommender.core.replay.Profiler` (every
   event through the one profile function, so the profiles hold what a live one holds:
   features up to ``ZMOT_PROFILE_TOP_N``, purchases, remembered touches, and whatever else the
   profile keeps);
2. writes them to Redis with :class:`~recommender.adapters.redis_store.ProfileStore` under a
   key prefix of its own, once per stored form: packed at each ``--levels`` zlib level, and
   (``--with-hash``, the default) as the one-hash-field-per-entry form older workers wrote,
   so the forms are compared in one run;
3. reads ``MEMORY USAGE`` of every key (``SAMPLES 0``: exact) and the growth of
   ``used_memory`` over the write;
4. prints bytes per profile (mean, p50, p95, and for the profiles that reached 64 features),
   the extrapolation to 1M profiles (all of them, and all with 64 features), and appends them
   to ``BENCHMARKS.md`` with the machine, date and command; deletes its keys.

Redis comes from the ``ZMOT_*`` settings (``make bench`` starts the test stack).

    python benchmarks/bench_redis_memory.py [--users 10000] [--seed 1] [--levels 1,0]
                                            [--no-hash] [--no-write]
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

from benchmarks.common import (  # noqa: E402
    append_section,
    command_line,
    drop_prefix,
    machine,
    now_utc,
    say,
)

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


async def measure(profiles: dict[str, object], prefix: str, form: str) -> dict[str, object]:
    """Write every profile in ``form`` ("hash" or "packed-<level>"); their memory."""
    from recommender.adapters.codec import profile_to_hash
    from recommender.adapters.redis_store import ProfileStore, connect
    from recommender.core.settings import get_settings

    settings = get_settings()
    client = connect(settings.redis_url)
    level = 0 if form == "hash" else int(form.rsplit("-", 1)[1])
    store = ProfileStore(client, prefix, ttl_s=3600.0, pack_level=level)
    try:
        await store.check()
        before = int((await client.info("memory"))["used_memory"])
        users = list(profiles)
        for start in range(0, len(users), 1000):
            chunk = users[start : start + 1000]
            if form == "hash":
                async with client.pipeline(transaction=False) as pipe:
                    for u in chunk:
                        pipe.hset(store.key(u), mapping=profile_to_hash(profiles[u]))  # type: ignore[arg-type]
                        pipe.pexpire(store.key(u), 3_600_000)
                    await pipe.execute()
            else:
                await store.put_many([(u, None, profiles[u]) for u in chunk])  # type: ignore[misc]
        after = int((await client.info("memory"))["used_memory"])
        sizes = []
        for start in range(0, len(users), 1000):
            async with client.pipeline(transaction=False) as pipe:
                for user in users[start : start + 1000]:
                    pipe.memory_usage(store.key(user), samples=0)
                sizes += await pipe.execute()
        return {
            "used_memory_delta": after - before,
            "sizes": np.array(sizes, dtype=np.float64),
        }
    finally:
        await client.aclose()
        await drop_prefix(settings.redis_url, prefix)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="shoppers in the generated shop")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--levels", default="1,0", help="zlib levels of the packed form to measure")
    p.add_argument("--no-hash", action="store_true", help="do not measure the old hash form")
    p.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args()
    try:
        levels = [int(level) for level in args.levels.split(",")]
    except ValueError:
        p.error("--levels takes comma-separated zlib levels, e.g. 1,0")
    if any(not 0 <= level <= 9 for level in levels):
        p.error("--levels must be 0-9")
    with tempfile.TemporaryDirectory(prefix="zmot-mem-") as tmp:
        profiles = profiles_of_a_shop(Path(tmp), args.users, args.seed)
    n_features = np.array([len(pr.weights) for pr in profiles.values()])  # type: ignore[attr-defined]
    forms = ([] if args.no_hash else ["hash"]) + [f"packed-{level}" for level in levels]
    rows = []
    for form in forms:
        say(f"writing {len(profiles):,} profiles as {form} ...")
        got = asyncio.run(measure(profiles, f"zmot-bench-mem-{form}:", form))
        sizes = got["sizes"]
        assert isinstance(sizes, np.ndarray)
        full = sizes[n_features >= 64]
        per = float(sizes.mean())
        per_full = float(full.mean()) if len(full) else float("nan")
        name = (
            "hash, a field per entry (before)"
            if form == "hash"
            else (f"packed, zlib level {form.rsplit('-', 1)[1]}")
        )
        rows.append(
            f"| {name} | {len(sizes):,} "
            f"| {per:,.0f} / {np.percentile(sizes, 50):,.0f} / {np.percentile(sizes, 95):,.0f} "
            f"| {per_full:,.0f} ({len(full):,}) | {per * 1e6 / GIB:.2f} "
            f"| {per_full * 1e6 / GIB:.2f} "
            f"| {int(got['used_memory_delta']) / max(1, len(sizes)):,.0f} |"  # type: ignore[call-overload]
        )
    lines = [
        f"## Redis memory per profile ({now_utc()})",
        "",
        f"- command: `{command_line()}`",
        f"- machine: {machine()}",
        f"- data: the replayed demo shop of {args.users:,} shoppers (seed {args.seed}), "
        "MEMORY USAGE of every key (SAMPLES 0)",
        "",
        "| stored form | profiles | bytes per profile (mean / p50 / p95) "
        "| with 64 features: bytes (n) | GiB per 1M profiles | GiB per 1M of 64 features "
        "| used_memory growth per profile |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    text = "\n".join(lines)
    say(text)
    if not args.no_write:
        append_section(text)


if __name__ == "__main__":
    main()
