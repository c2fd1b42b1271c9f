"""The model registry: versions side by side under one folder, a ``current`` pointer, a manifest.

Layout of ``ZMOT_MODEL_DIR`` as a registry::

    <version>/          a model artifact (meta.json, model.npz, ...) and its manifest.json
    current             one line: the version the API and the worker serve
    history             one line per activation, oldest first (what ``rollback`` walks back)

``ZMOT_MODEL_DIR`` may instead point at one artifact (``meta.json`` inside), as before the
registry: :func:`locate` serves that artifact and there is nothing to activate or roll back.

The pointer is replaced atomically (write a temporary file, rename it over ``current``), so a
reader sees the old version or the new one, never half a name. Processes watch the pointer
(:class:`PointerWatch`) and load the version it names.

Compatibility: a model reads profiles built with its feature config and profile math
(``feature_config`` and ``profile_params`` of ``meta.json``). A version whose configs equal the
serving one's reads the live profiles as they are (hot swap); one that differs needs profiles
rebuilt its way, which a hot swap cannot give (:func:`compatibility`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.core.errors import ModelError
from recommender.core.model import Model

CURRENT = "current"
HISTORY = "history"
MANIFEST = "manifest.json"
META = "meta.json"
PROFILE_KEYS = ("feature_config", "profile_params")
"""The parts of ``meta.json`` that decide how live profiles are built."""


@dataclass(frozen=True)
class Located:
    """The artifact a process serves: its folder and version, and whether it came through a
    registry pointer (False: ``ZMOT_MODEL_DIR`` is a single artifact)."""

    path: Path
    version: str
    registry: bool


def is_artifact(path: Path) -> bool:
    """Whether ``path`` holds one model artifact (not a registry)."""
    return (path / META).is_file()


def locate(model_dir: Path) -> Located:
    """The artifact to serve for ``ZMOT_MODEL_DIR``: the folder itself when it is an artifact,
    else the registry's current version. :class:`ModelError` names what is missing."""
    if is_artifact(model_dir):
        meta = read_json_object(model_dir / META)
        return Located(model_dir, str(meta.get("version", "")), registry=False)
    registry = Registry(model_dir)
    version = registry.current()
    if version is None:
        raise ModelError(
            f"no model at {model_dir}: neither an artifact (meta.json) nor a registry with a "
            f"`{CURRENT}` pointer (run `zmot train`, then `zmot model activate VERSION`)"
        )
    return Located(registry.path_of(version), version, registry=True)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; :class:`ModelError` names the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return data


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def profile_config(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The profile-building part of a model's meta (feature config and profile math)."""
    return {key: meta.get(key) for key in PROFILE_KEYS}


@dataclass(frozen=True)
class Compatibility:
    """Whether a version reads the serving version's profiles; ``differences`` names the
    fields that differ (empty when compatible)."""

    compatible: bool
    differences: list[str]

    def describe(self) -> str:
        if self.compatible:
            return "compatible: same feature config and profile math, swapped hot"
        return (
            "incompatible: profiles are built differently ("
            + ", ".join(self.differences)
            + "); live profiles would be read with the wrong features"
        )


def compatibility(serving: Mapping[str, Any], candidate: Mapping[str, Any]) -> Compatibility:
    """Compare the profile-building configs of two models' metas, field by field."""
    differences: list[str] = []
    for key in PROFILE_KEYS:
        old, new = serving.get(key) or {}, candidate.get(key) or {}
        for field in sorted(set(old) | set(new)):
            if old.get(field) != new.get(field):
                differences.append(f"{key}.{field}: {old.get(field)!r} -> {new.get(field)!r}")
    return Compatibility(not differences, differences)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Registry:
    """Model versions under one folder; see the module doc for the layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if is_artifact(self.root):
            raise ModelError(
                f"{self.root} is a single model artifact, not a registry: point ZMOT_MODEL_DIR "
                "(or --registry) at an empty or registry folder to keep versions"
            )

    def path_of(self, version: str) -> Path:
        if (
            not version
            or "/" in version
            or version.startswith(".")
            or version
            in (
                CURRENT,
                HISTORY,
            )
        ):
            raise ModelError(f"not a model version: {version!r}")
        return self.root / version

    def versions(self) -> list[str]:
        """Every registered version, oldest first (versions start with their UTC time)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_artifact(p))

    def current(self) -> str | None:
        """The active version, or None when nothing was activated."""
        try:
            text = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def history(self) -> list[str]:
        """Activated versions, oldest first (a version appears once per activation)."""
        try:
            lines = (self.root / HISTORY).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [line.split()[0] for line in lines if line.strip()]

    def manifest(self, version: str) -> dict[str, Any]:
        """The manifest of a version (``{}`` for an artifact copied in without one)."""
        path = self.path_of(version)
        if not is_artifact(path):
            raise ModelError(f"no model version {version!r} in {self.root}")
        manifest_path = path / MANIFEST
        return read_json_object(manifest_path) if manifest_path.is_file() else {}

    def meta(self, version: str) -> dict[str, Any]:
        path = self.path_of(version)
        if not is_artifact(path):
            raise ModelError(f"no model version {version!r} in {self.root}")
        return read_json_object(path / META)

    def register(
        self,
        model: Model,
        *,
        data_range: tuple[float, float] | None = None,
        quality: Mapping[str, Any] | None = None,
        source: str = "",
    ) -> Path:
        """Save ``model`` as ``<root>/<version>/`` with its manifest; the pointer is unchanged."""
        path = self.path_of(model.version)
        if is_artifact(path):
            raise ModelError(f"version {model.version} is already registered at {path}")
        tmp = self.root / f".{model.version}.partial"
        model.save(tmp)  # in a hidden folder first: a half-written version is never listed
        manifest = {
            "version": model.version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source,
            "data_range": None
            if data_range is None
            else {
                "first": _iso(data_range[0]),
                "last": _iso(data_range[1]),
            },
            "events": model.info.get("n_events"),
            "quality": dict(quality or {}),
            "artifact_bytes": _dir_bytes(tmp),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        tmp.replace(path)
        return path

    def activate(self, version: str) -> str | None:
        """Point ``current`` at ``version``; returns the version it replaced."""
        self.manifest(version)  # raises unless registered
        previous = self.current()
        _write_atomic(self.root / CURRENT, version + "\n")
        with (self.root / HISTORY).open("a", encoding="utf-8") as out:
            out.write(f"{version} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        return previous

    def previous(self) -> str | None:
        """The version active before the current one (what :meth:`rollback` activates)."""
        current = self.current()
        for version in reversed(self.history()):
            if version != current and is_artifact(self.root / version):
                return version
        return None

    def rollback(self) -> tuple[str, str]:
        """Activate the version that was active before the current one; (from, to).

        The rollback is itself an activation in the history, so a second rollback goes back
        to the version rolled back from.
        """
        current = self.current()
        target = self.previous()
        if current is None or target is None:
            raise ModelError(f"nothing to roll back to in {self.root}: one version was active")
        self.activate(target)
        return current, target


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class PointerWatch:
    """Tells whether the artifact :func:`locate` names changed since it was last asked.

    Cheap enough to call every second: one ``stat`` of the pointer (or of ``meta.json`` for a
    single artifact) and one small read when its modification time or size moved.
    """

    def __init__(self, model_dir: Path, serving: Located) -> None:
        self.model_dir = Path(model_dir)
        self.serving = serving
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        path = self.model_dir / (CURRENT if self.serving.registry else META)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def changed(self) -> Located | None:
        """The newly pointed-at artifact, or None when the pointer names what is served."""
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        located = locate(self.model_dir)
        if located.version == self.serving.version and located.path == self.serving.path:
            return None
        return located

    def served(self, located: Located) -> None:
        """Record that ``located`` is now served. A version refused is not recorded: the
        pointer's stamp has moved on, so it is not offered again until the pointer changes."""
        self.serving = located
