"""The profile generations record in Redis (blue/green profiles, see recommender.core.generations).

One hash, ``<prefix>generations`` (one key, so every change is a single-key command or script
and Redis Cluster needs no cross-slot operation):

=====================  ==========================================================
``live``               the live generation (JSON); absent: the original profiles
``rebuild``            the generation being rebuilt (JSON); absent: no rebuild
``progress``           the rebuild's last measured lag (JSON)
``retired:<prefix>``   a profile prefix switched away from, expiring (JSON)
=====================  ==========================================================

The switch is one Lua call that checks both ``live`` and ``rebuild`` are what the switcher
read, so of several workers racing to switch, exactly one does, and a rebuild cancelled in
the meantime is never made live.
"""

from __future__ import annotations

import time
from typing import Any

from recommender.adapters.keys import generation_prefix, generations_key, scan_pattern
from recommender.adapters.redis_client import RedisClient, register_script
from recommender.core.errors import ModelError
from recommender.core.generations import (
    Generation,
    GenerationState,
    Progress,
    Retired,
    new_generation,
    original,
)

LIVE = "live"
REBUILD = "rebuild"
PROGRESS = "progress"
RETIRED = "retired:"

# KEYS[1] the record; ARGV[1] rebuild as read; ARGV[2] live as read ('' when absent);
# ARGV[3] the new live (the rebuild with its switch time); ARGV[4] field and ARGV[5] value of
# the retired prefix. Returns 1 when switched, 0 when the record had changed.
SWITCH = """
if (redis.call('HGET', KEYS[1], 'rebuild') or '') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'live') or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'live', ARGV[3], ARGV[4], ARGV[5])
redis.call('HDEL', KEYS[1], 'rebuild', 'progress')
return 1
"""

# KEYS[1] the record; ARGV[1] the rebuild; returns '' when started, else the running one.
START = """
local running = redis.call('HGET', KEYS[1], 'rebuild')
if running then return running end
redis.call('HSET', KEYS[1], 'rebuild', ARGV[1])
redis.call('HDEL', KEYS[1], 'progress')
return ''
"""

# KEYS[1] the record; ARGV[1] the rebuild as read; ARGV[2]/ARGV[3] its retired field/value.
CANCEL = """
if (redis.call('HGET', KEYS[1], 'rebuild') or '') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'rebuild', 'progress')
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
"""

SCAN_COUNT = 1000


class GenerationStore:
    """Reads and changes the generations record of one stack (``prefix``, ``group``: the
    settings' Redis prefix and consumer group, those of the original generation)."""

    def __init__(self, client: RedisClient, prefix: str, group: str) -> None:
        self.client = client
        self.prefix = prefix
        self.group = group
        self.key = generations_key(prefix)
        self._switch = register_script(client, SWITCH)
        self._start = register_script(client, START)
        self._cancel = register_script(client, CANCEL)

    @property
    def original(self) -> Generation:
        return original(self.prefix, self.group)

    async def state(self) -> GenerationState:
        """The record as it is now (one HGETALL)."""
        raw: dict[Any, Any] = await self.client.hgetall(self.key)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        live = Generation.from_json(fields[LIVE]) if LIVE in fields else self.original
        rebuild = Generation.from_json(fields[REBUILD]) if REBUILD in fields else None
        progress = Progress.from_json(fields[PROGRESS]) if PROGRESS in fields else None
        retired = tuple(
            r
            for name, value in sorted(fields.items())
            if name.startswith(RETIRED) and (r := Retired.from_json(value)) is not None
        )
        return GenerationState(live, rebuild, progress, retired)

    async def live(self) -> Generation:
        """The live generation (one HGET)."""
        value = await self.client.hget(self.key, LIVE)
        return self.original if value is None else Generation.from_json(value)

    async def start_rebuild(self, version: str, now: float | None = None) -> Generation:
        """Record a rebuild of profiles for ``version``; :class:`ModelError` when one is
        already running (for another version: cancel it first) or ``version`` is live."""
        state = await self.state()
        if state.live.version == version:
            raise ModelError(f"model {version} already has live profiles ({state.live.name})")
        if state.rebuild is not None:
            raise ModelError(
                f"a rebuild is already running: {state.rebuild.describe()}; wait for it or "
                "`zmot model rebuild --cancel`"
            )
        generation = new_generation(
            version,
            base_prefix=self.prefix,
            base_group=self.group,
            now=time.time() if now is None else now,
            prefix_of=generation_prefix,
        )
        running = _text(await self._start(keys=[self.key], args=[generation.to_json()]))
        if running:
            raise ModelError(f"a rebuild is already running: {running}")
        return generation

    async def cancel_rebuild(self, ttl_s: float) -> Generation | None:
        """Stop a rebuild: its record goes, its profiles expire within ``ttl_s``; the
        cancelled generation (None when none was running)."""
        raw = await self.client.hget(self.key, REBUILD)
        if raw is None:
            return None
        rebuild = Generation.from_json(raw)
        now = time.time()
        retired = Retired(rebuild.prefix, now + ttl_s, now)
        ok = await self._cancel(
            keys=[self.key], args=[_text(raw), RETIRED + rebuild.prefix, retired.to_json()]
        )
        return rebuild if ok else None

    async def record_progress(self, rebuild: Generation, progress: Progress) -> None:
        """Store a rebuild's measured lag (only while it is still the rebuild)."""
        raw = await self.client.hget(self.key, REBUILD)
        if raw is not None and Generation.from_json(raw) == rebuild:
            await self.client.hset(self.key, PROGRESS, progress.to_json())

    async def switch(self, rebuild: Generation, ttl_s: float) -> Generation | None:
        """Make ``rebuild`` the live generation, atomically, if it still is the rebuild; the
        generation switched away from (its profiles expire within ``ttl_s``), or None when
        the record changed under us (another worker switched, or the rebuild was cancelled)."""
        raw_rebuild = await self.client.hget(self.key, REBUILD)
        raw_live = await self.client.hget(self.key, LIVE)
        if raw_rebuild is None or Generation.from_json(raw_rebuild) != rebuild:
            return None
        old = self.original if raw_live is None else Generation.from_json(raw_live)
        now = time.time()
        live = Generation(
            rebuild.name, rebuild.version, rebuild.group, rebuild.prefix, rebuild.started, now
        )
        retired = Retired(old.prefix, now + ttl_s, now)
        ok = await self._switch(
            keys=[self.key],
            args=[
                _text(raw_rebuild),
                "" if raw_live is None else _text(raw_live),
                live.to_json(),
                RETIRED + old.prefix,
                retired.to_json(),
            ],
        )
        return old if ok else None

    async def sweep(self, retired: Retired, now: float | None = None) -> int:
        """Give every profile under a retired prefix its expiry (never a later one than it
        has); the keys touched. A retired entry past its expiry is dropped from the record
        (its keys are gone by then)."""
        now = time.time() if now is None else now
        field = RETIRED + retired.prefix
        if now >= retired.until:
            await self.client.hdel(self.key, field)
            return 0
        until_ms = int(retired.until * 1000)
        pattern = scan_pattern(retired.prefix, "profile")
        touched = 0
        batch: list[Any] = []
        async for key in self.client.scan_iter(match=pattern, count=SCAN_COUNT):
            batch.append(key)
            if len(batch) >= SCAN_COUNT:
                touched += await self._expire(batch, until_ms)
                batch = []
        touched += await self._expire(batch, until_ms)
        await self.client.hset(self.key, field, retired.swept().to_json())
        return touched

    async def _expire(self, keys: list[Any], until_ms: int) -> int:
        if not keys:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.pexpireat(key, until_ms, lt=True)
            results = await pipe.execute()
        return sum(1 for r in results if r)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
