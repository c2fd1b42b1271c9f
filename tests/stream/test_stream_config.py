"""Worker start-up without a broker: profile math from settings or the model, app config."""

from __future__ import annotations

import gc
import json
import socket
from pathlib import Path

import pytest

from recommender.core.errors import CatalogError, ConfigError, ModelError
from recommender.core.features import FeatureConfig
from recommender.core.profile import ProfileParams
from recommender.core.settings import Settings
from stream.app import create_app, datadir_for
from stream.worker import GC_THRESHOLDS, build_profiler, run_worker, tune_gc


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"state_dir": tmp_path / "state", **overrides}
    return Settings(**values)  # type: ignore[arg-type]


def test_profiler_defaults_come_from_settings(tmp_path: Path) -> None:
    s = _settings(tmp_path, half_life_hours=24.0, profile_top_n=16, purchase_memory=4)
    profiler = build_profiler(s)
    assert profiler.params == ProfileParams(half_life_s=86_400.0, top_n=16, purchase_memory=4)
    assert profiler.features == FeatureConfig()
    assert len(profiler.catalog) == 0


def test_model_meta_overrides_features_and_decay(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    features = FeatureConfig(category_share=0.7, kind_feature=0.0)
    meta = {
        "format": "zmot-model",
        "feature_config": features.to_dict(),
        "profile_params": {"half_life_s": 3600.0, "top_n": 8, "purchase_memory": 2},
    }
    (model / "meta.json").write_text(json.dumps(meta))
    profiler = build_profiler(_settings(tmp_path, model_dir=model))
    assert profiler.features == features
    assert profiler.params == ProfileParams(half_life_s=3600.0, top_n=8, purchase_memory=2)


def test_model_dir_without_meta_uses_settings(tmp_path: Path) -> None:
    profiler = build_profiler(_settings(tmp_path, model_dir=tmp_path))
    assert profiler.features == FeatureConfig()


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"feature_config": {"no_such_weight": 1.0}}),
        json.dumps({"profile_params": {"half_life_s": 1.0}}),
    ],
)
def test_broken_model_meta_is_a_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "meta.json").write_text(text)
    with pytest.raises(ModelError, match="meta.json"):
        build_profiler(_settings(tmp_path, model_dir=tmp_path))


def test_catalog_is_loaded_or_absent_but_never_broken(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(json.dumps({"item_id": "tv-1", "category": "tv.oled", "brand": "acme"}))
    assert build_profiler(_settings(tmp_path, catalog_path=catalog)).catalog.get("tv-1")
    absent = build_profiler(_settings(tmp_path, catalog_path=tmp_path / "missing.jsonl"))
    assert len(absent.catalog) == 0
    catalog.write_text("{broken\n")
    with pytest.raises(CatalogError, match="catalog.jsonl:1"):
        build_profiler(_settings(tmp_path, catalog_path=catalog))
    directory = tmp_path / "a-directory"
    directory.mkdir()
    with pytest.raises(CatalogError):
        build_profiler(_settings(tmp_path, catalog_path=directory))


def test_app_reads_raw_bytes_from_the_start_and_binds_loopback(tmp_path: Path) -> None:
    s = _settings(
        tmp_path,
        consumer_group="g-1",
        kafka_bootstrap="127.0.0.1:19092,127.0.0.2:19092",
        topic_partitions=6,
        worker_web_port=16123,
    )
    app = create_app(s)
    conf = app.conf
    assert conf.id == "g-1"
    assert [str(u) for u in conf.broker] == ["kafka://127.0.0.1:19092", "kafka://127.0.0.2:19092"]
    assert (conf.key_serializer, conf.value_serializer) == ("raw", "raw")
    assert conf.consumer_auto_offset_reset == "earliest"
    assert conf.topic_partitions == 6
    assert (conf.web_bind, conf.web_port, conf.web_enabled) == ("127.0.0.1", 16123, True)
    assert Path(conf.datadir) == datadir_for(s) == tmp_path / "state" / "worker" / "g-1"
    assert not create_app(s, web_enabled=False).conf.web_enabled


def test_unreachable_redis_fails_before_kafka(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = _settings(tmp_path, redis_url=f"redis://127.0.0.1:{port}/0", kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(ConfigError, match="ZMOT_REDIS_URL"):
        run_worker(s)


def test_tune_gc_freezes_start_up_and_raises_the_young_threshold() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
