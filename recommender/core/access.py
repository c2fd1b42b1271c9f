"""API keys and what each may do: the keys file, scopes, lookup in constant time.

The file named by ``ZMOT_API_KEYS_FILE`` is YAML::

    keys:
      - name: shop-browser
        sha256: 9f86d0...          # SHA-256 (hex) of the key; the key itself is never stored
        scopes: [events:write, offers:read]
        origins: [https://shop.example]      # CORS for this key (browser keys)
        event_types: [page_view, search]     # what the key may send (default: every type)
        reasons: generic                     # never quote a person's searches or items
        rate: {per_second: 20, burst: 40}    # requests per key, shared by all API processes

A key is 32 random bytes, URL-safe base64 (:func:`new_key`). Lookup hashes the presented key
and compares it with every entry's hash with :func:`hmac.compare_digest`, without stopping at
the first match, so the time taken does not tell how much of a hash matched or where.
:class:`KeyFile` re-reads the file when it changes (checked at most every ``check_every_s``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recommender.core.errors import ConfigError
from recommender.core.events import EventType

log = logging.getLogger(__name__)

Scope = Literal[
    "events:write", "offers:read", "profiles:read", "profiles:erase", "admin", "ops:read"
]
SCOPES: tuple[str, ...] = get_args(Scope)
"""Every scope, each granting only its own routes (``admin`` does not imply the others)."""

EVENT_TYPES: tuple[str, ...] = get_args(EventType)

KEY_BYTES = 32


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256 of its UTF-8 bytes, lower-case hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh key: 32 random bytes, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(KEY_BYTES)


class Rate(BaseModel):
    """Requests a key may make: ``per_second`` on average, up to ``burst`` at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(gt=0)
    burst: int = Field(ge=1)


class KeyEntry(BaseModel):
    """One key of the keys file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: tuple[Scope, ...] = Field(min_length=1)
    origins: tuple[str, ...] = ()
    event_types: tuple[EventType, ...] | None = None
    reasons: Literal["full", "generic"] = "full"
    rate: Rate | None = None

    @field_validator("origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if scheme not in {"http", "https"} or not sep or not rest or "/" in rest:
                raise ValueError(f"an origin is scheme://host[:port], got {origin!r}")
        return value

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def may_send(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    @property
    def generic_reasons(self) -> bool:
        return self.reasons == "generic"


class KeysDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class KeyRing:
    """The keys of one reading of the file."""

    keys: tuple[KeyEntry, ...] = ()

    def find(self, presented: str) -> KeyEntry | None:
        """The entry of a presented key, or None; every entry is compared (constant time)."""
        digest = hash_key(presented)
        found: KeyEntry | None = None
        for entry in self.keys:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found

    @property
    def origins(self) -> frozenset[str]:
        """Every origin some key allows (answers to CORS preflights, which carry no key)."""
        return frozenset(origin for entry in self.keys for origin in entry.origins)

    def names(self) -> list[str]:
        return [entry.name for entry in self.keys]


def parse_keys(data: Any, source: str = "keys file") -> KeyRing:
    """A :class:`KeyRing` from the parsed YAML; :class:`ConfigError` naming what is wrong."""
    if data is None:
        data = {}
    try:
        document = KeysDocument.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None
    seen: set[str] = set()
    for entry in document.keys:
        if entry.name in seen:
            raise ConfigError(f"{source}: two keys are named {entry.name!r}")
        seen.add(entry.name)
    return KeyRing(tuple(document.keys))


def load_keys(path: Path) -> KeyRing:
    """The keys of ``path``; a missing or broken file is a :class:`ConfigError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read ZMOT_API_KEYS_FILE {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML ({exc})") from None
    return parse_keys(data, str(path))


def write_keys(path: Path, ring: KeyRing) -> None:
    """Replace ``path`` atomically with ``ring`` (mode 0600: it tells who may do what)."""
    document = {"keys": [entry.model_dump(mode="json", exclude_none=True) for entry in ring.keys]}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_key(
    path: Path,
    name: str,
    scopes: Sequence[str],
    *,
    origins: Sequence[str] = (),
    event_types: Sequence[str] | None = None,
    reasons: str = "full",
    rate: tuple[float, int] | None = None,
) -> str:
    """Create a key, append its entry to ``path`` (created if absent); the key, shown once."""
    ring = load_keys(path) if path.exists() else KeyRing()
    if name in ring.names():
        raise ConfigError(f"{path}: a key named {name!r} exists; revoke it first or pick a name")
    key = new_key()
    entry: dict[str, Any] = {"name": name, "sha256": hash_key(key), "scopes": list(scopes)}
    if origins:
        entry["origins"] = list(origins)
    if event_types is not None:
        entry["event_types"] = list(event_types)
    if reasons != "full":
        entry["reasons"] = reasons
    if rate is not None:
        entry["rate"] = {"per_second": rate[0], "burst": rate[1]}
    data = {"keys": [e.model_dump(mode="json", exclude_none=True) for e in ring.keys] + [entry]}
    write_keys(path, parse_keys(data, str(path)))
    return key


def revoke_key(path: Path, name: str) -> None:
    """Remove the key called ``name`` from ``path``."""
    ring = load_keys(path)
    if name not in ring.names():
        raise ConfigError(f"{path}: no key named {name!r} (keys: {', '.join(ring.names())})")
    write_keys(path, KeyRing(tuple(e for e in ring.keys if e.name != name)))


class KeyFile:
    """The keys of a file, re-read when the file changes.

    :meth:`current` looks at the file's modification time, size and inode at most every
    ``check_every_s`` seconds, so a created, revoked or edited key takes effect within that
    (plus the time of one read). A file that became unreadable or invalid keeps the last good
    keys and logs an error on every check until it is fixed: a typo must not open the API or
    lock every client out.
    """

    def __init__(
        self,
        path: Path,
        check_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self._clock = clock
        self._stamp = self._stat()
        self._ring = load_keys(path)
        self._checked = clock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> KeyRing:
        """The keys now in force."""
        now = self._clock()
        if now - self._checked >= self.check_every_s:
            self._checked = now
            self.refresh()
        return self._ring

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when new keys were taken."""
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        try:
            ring = load_keys(self.path)
        except ConfigError as exc:
            log.error("keeping the previous API keys: %s", exc)
            return False
        self._stamp, self._ring = stamp, ring
        log.info("API keys re-read from %s: %d keys", self.path, len(ring.keys))
        return True


__all__ = [
    "SCOPES",
    "KeyEntry",
    "KeyFile",
    "KeyRing",
    "Rate",
    "Scope",
    "add_key",
    "hash_key",
    "load_keys",
    "new_key",
    "parse_keys",
    "revoke_key",
    "write_keys",
]
