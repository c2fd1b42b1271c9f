"""Redis memory per profile: realistic profiles written by the worker's own store, measured.

What it does:

1. makes a demo shop with ``zmot demo-data`` (``--users``, default 10,000 shoppers) and
   replays its history with the worker's :class:`~recommender.core.replay.Profiler` (every
   event through the one profile function, so the profiles hold what a live one holds:
   features up to ``ZMOT_PROFILE_TOP_N``, purchases, remembered touches, and whatever else the
   profile keeps);
2. writes them to Redis under a key prefix as long as the default ``zmot:`` (the key name is
   part of what a profile costs), once per stored form, each form's keys deleted before the
   next: the compact form (names as ids of the shared vocabulary, the worker's
   :class:`~recommender.adapters.redis_store.ProfileStore` with the catalog's search words
   shareable, as the worker runs it) at each ``--levels`` zlib level; the packed form of the
   workers before (``--no-legacy`` skips it) at the same levels, with each remembered event
   id written as the 36 characters of a UUID as those workers stored it; and (unless
   ``--no-hash``) the one-hash-field-per-entry form of the workers before that;
3. reads ``MEMORY USAGE`` of every key (``SAMPLES 0``: exact) and the growth of
   ``used_memory`` over the write; for the compact form also the vocabulary's two hashes,
   shown per profile (they are shared: per profile they shrink as the profiles grow);
4. prints bytes per profile (mean, p50, p95, and for the profiles that reached 64 features),
   the extrapolation to 1M profiles (all of them, and all with 64 features), and appends them
   to ``BENCHMARKS.md`` with the machine, date and command; deletes its keys.

Redis comes from the ``ZMOT_*`` settings (``make bench`` starts the test stack).

    python benchmarks/bench_redis_memory.py [--users 10000] [--seed 1] [--levels 0,1]
                                            [--no-hash] [--no-legacy] [--no-write]
                                            [--vocab-base 100000]
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


def profiles_of_a_shop(work: Path, users: int, seed: int) -> tuple[dict[str, object], object]:
    """The live profiles of a generated shop's whole history (user id -> Profile), and the
    search features its catalog lets the vocabulary share."""
    from recommender.core.catalog import Catalog
    from recommender.core.events import load_events
    from recommender.core.features import catalog_search_features
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
    return dict(profiler.replay(events)), catalog_search_features(catalog.items.values())


async def pad_vocabulary(client: object, prefix: str, count: int) -> None:
    """Give ``count`` placeholder names the first vocabulary ids, as a big catalog would
    have: the profiles' own names then get ids above ``count`` (wider in a profile)."""
    from recommender.adapters.keys import vocab_keys

    names_key, ids_key = vocab_keys(prefix)
    for start in range(1, count + 1, 10_000):
        stop = min(count, start + 9_999)
        async with client.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
            pipe.hset(names_key, mapping={f"pad:{i}": i for i in range(start, stop + 1)})
            pipe.hset(ids_key, mapping={i: f"pad:{i}" for i in range(start, stop + 1)})
            await pipe.execute()


async def measure(
    profiles: dict[str, object],
    prefix: str,
    form: str,
    shared_text: frozenset[str],
    vocab_base: int = 0,
) -> dict[str, object]:
    """Write every profile in ``form`` ("hash", "legacy-<level>" or "compact-<level>");
    their memory."""
    from dataclasses import replace

    from recommender.adapters.codec import profile_to_hash, profile_to_value
    from recommender.adapters.keys import vocab_keys
    from recommender.adapters.redis_store import ProfileStore, connect
    from recommender.core.settings import get_settings

    settings = get_settings()
    client = connect(settings.redis_url)
    level = 0 if form == "hash" else int(form.rsplit("-", 1)[1])
    store = ProfileStore(client, prefix, ttl_s=3600.0, pack_level=level, shared_text=shared_text)

    def as_before(profile: object) -> object:  # event ids as the workers before kept them
        seen = {f"{key:036d}": v for key, v in profile.seen.items()}  # type: ignore[attr-defined]
        return replace(profile, seen=seen)  # type: ignore[type-var]

    try:
        await store.check()
        if form.startswith("compact") and vocab_base:
            await pad_vocabulary(client, prefix, vocab_base)
        before = int((await client.info("memory"))["used_memory"])
        users = list(profiles)
        for start in range(0, len(users), 1000):
            chunk = users[start : start + 1000]
            if form == "hash":
                async with client.pipeline(transaction=False) as pipe:
                    for u in chunk:
                        fields = profile_to_hash(as_before(profiles[u]))  # type: ignore[arg-type]
                        pipe.hset(store.key(u), mapping=fields)  # type: ignore[arg-type]
                        pipe.pexpire(store.key(u), 3_600_000)
                    await pipe.execute()
            elif form.startswith("legacy"):
                async with client.pipeline(transaction=False) as pipe:
                    for u in chunk:
                        value = profile_to_value(as_before(profiles[u]), level)  # type: ignore[arg-type]
                        pipe.set(store.key(u), value, px=3_600_000)
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
        vocab = 0
        if form.startswith("compact"):
            for key in vocab_keys(prefix):
                vocab += int(await client.memory_usage(key, samples=0) or 0)
        return {
            "used_memory_delta": after - before,
            "sizes": np.array(sizes, dtype=np.float64),
            "vocab_bytes": vocab,
            "vocab_names": len(store.vocab.ids),
        }
    finally:
        await client.aclose()
        await drop_prefix(settings.redis_url, prefix)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="shoppers in the generated shop")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--levels", default="0,1", help="zlib levels of the packed forms to measure")
    p.add_argument("--no-hash", action="store_true", help="do not measure the old hash form")
    p.add_argument("--no-legacy", action="store_true", help="do not measure the packed form before")
    p.add_argument(
        "--vocab-base",
        type=int,
        default=0,
        help="vocabulary ids already given before the shop's names (a big catalog: 100000 "
        "makes every id of the shop need 3 bytes)",
    )
    p.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args()
    try:
        levels = [int(level) for level in args.levels.split(",")]
    except ValueError:
        p.error("--levels takes comma-separated zlib levels, e.g. 1,0")
    if any(not 0 <= level <= 9 for level in levels):
        p.error("--levels must be 0-9")
    with tempfile.TemporaryDirectory(prefix="zmot-mem-") as tmp:
        profiles, shared_text = profiles_of_a_shop(Path(tmp), args.users, args.seed)
    n_features = np.array([len(pr.weights) for pr in profiles.values()])  # type: ignore[attr-defined]
    forms = (
        ([] if args.no_hash else ["hash"])
        + ([] if args.no_legacy else [f"legacy-{level}" for level in levels])
        + [f"compact-{level}" for level in levels]
    )
    rows = []
    notes = []
    for form in forms:
        say(f"writing {len(profiles):,} profiles as {form} ...")
        # "zmot:" is the default prefix: bench keys as long as live ones
        got = asyncio.run(
            measure(profiles, "zmob:", form, shared_text, args.vocab_base)  # type: ignore[arg-type]
        )
        sizes = got["sizes"]
        assert isinstance(sizes, np.ndarray)
        full = sizes[n_features >= 64]
        per = float(sizes.mean())
        per_full = float(full.mean()) if len(full) else float("nan")
        lvl = form.rsplit("-", 1)[-1]
        name = {
            "hash": "hash, a field per entry (two formats before)",
            "legacy": f"packed (format B/Z, before), zlib level {lvl}",
            "compact": f"compact (format C/D, now), zlib level {lvl}"
            + (f", vocabulary ids from {args.vocab_base + 1:,}" if args.vocab_base else ""),
        }[form.split("-")[0]]
        if form.startswith("compact"):
            notes.append(
                f"- {name}: the shared vocabulary held this shop's {got['vocab_names']:,} names "
                f"(and {args.vocab_base:,} placeholders) in "
                f"{got['vocab_bytes']:,} bytes, {int(got['vocab_bytes']) / len(sizes):,.1f} "  # type: ignore[call-overload]
                "bytes per profile of this shop (not in the columns above)"
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
        "",
        *notes,
    ]
    text = "\n".join(lines)
    say(text)
    if not args.no_write:
        append_section(text)


if __name__ == "__main__":
    main()
