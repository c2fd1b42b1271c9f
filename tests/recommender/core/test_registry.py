"""The model registry: versions, the ``current`` pointer, rollback, compatibility, the watch."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from recommender.core.errors import ModelError
from recommender.core.model import Model
from recommender.core.registry import (
    CURRENT,
    PointerWatch,
    Registry,
    compatibility,
    locate,
)
from recommender.core.runtime import resolve_runtime
from recommender.core.settings import Settings
from tests.support.models import tiny


def test_register_writes_a_manifest_and_leaves_the_pointer(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    path = reg.register(tiny("20261130T120000-aaaa"), data_range=(0.0, 86400.0), source="f")
    assert path == tmp_path / "20261130T120000-aaaa"
    assert Model.load(path).version == "20261130T120000-aaaa"
    manifest = reg.manifest("20261130T120000-aaaa")
    first, last = "1970-01-01T00:00:00Z", "1970-01-02T00:00:00Z"
    assert manifest["data_range"] == {"first": first, "last": last}
    assert manifest["events"] == 12 and manifest["source"] == "f"
    on_disk = sum(p.stat().st_size for p in path.iterdir() if p.name != "manifest.json")
    assert manifest["artifact_bytes"] == on_disk
    assert reg.current() is None and reg.versions() == ["20261130T120000-aaaa"]
    with pytest.raises(ModelError, match="no model at"):
        locate(tmp_path)  # registered, never activated
    with pytest.raises(ModelError, match="already registered"):
        reg.register(tiny("20261130T120000-aaaa"))


def test_activate_and_rollback_walk_the_history(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for v in ("v1", "v2", "v3"):
        reg.register(tiny(v))
    assert reg.activate("v1") is None
    assert reg.activate("v2") == "v1"
    assert reg.activate("v3") == "v2"
    assert locate(tmp_path).path == tmp_path / "v3" and locate(tmp_path).registry
    assert reg.rollback() == ("v3", "v2")
    assert reg.current() == "v2"
    assert reg.rollback() == ("v2", "v3")  # a rollback is an activation: undo it the same way
    assert (tmp_path / CURRENT).read_text() == "v3\n"
    with pytest.raises(ModelError, match="no model version"):
        reg.activate("v9")
    with pytest.raises(ModelError, match="not a model version"):
        reg.activate("../v1")


def test_rollback_with_one_version_is_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(tiny("v1"))
    reg.activate("v1")
    with pytest.raises(ModelError, match="nothing to roll back"):
        reg.rollback()


def test_a_single_artifact_is_served_as_before_and_is_no_registry(tmp_path: Path) -> None:
    tiny("solo").save(tmp_path)
    located = locate(tmp_path)
    assert (located.path, located.version, located.registry) == (tmp_path, "solo", False)
    with pytest.raises(ModelError, match="single model artifact"):
        Registry(tmp_path)


def test_runtime_follows_the_current_version(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.register(tiny("v1", half_life_s=3600.0))
    reg.activate("v1")
    assert resolve_runtime(Settings(model_dir=tmp_path)).half_life_s == 3600.0


def test_compatibility_names_each_differing_field() -> None:
    base = tiny("a").runtime_meta()
    assert compatibility(base, tiny("b").runtime_meta()).compatible
    other = tiny("c", half_life_s=3600.0)
    other.feature_config = replace(other.feature_config, brand_share=0.5)
    verdict = compatibility(base, other.runtime_meta())
    assert not verdict.compatible
    assert verdict.differences == [
        "feature_config.brand_share: 0.25 -> 0.5",
        "profile_params.half_life_s: 259200.0 -> 3600.0",
    ]
    assert "incompatible" in verdict.describe()


def test_pointer_watch_reports_each_activation_once(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for v in ("v1", "v2"):
        reg.register(tiny(v))
    reg.activate("v1")
    watch = PointerWatch(tmp_path, locate(tmp_path))
    assert watch.changed() is None
    reg.activate("v2")
    seen = watch.changed()
    assert seen is not None and seen.version == "v2"
    watch.served(seen)
    assert watch.changed() is None
    reg.activate("v2")  # the same version again: the pointer moved, the model did not
    assert watch.changed() is None


def test_manifest_of_an_unregistered_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "meta.json").write_text(json.dumps({"version": "junk"}))
    assert Registry(tmp_path).manifest("junk") == {}
    with pytest.raises(ModelError):
        Registry(tmp_path).manifest("nope")
