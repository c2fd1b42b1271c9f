"""The keys file: hashing, lookup, validation, create/revoke, re-reading on change."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.core.access import (
    KeyFile,
    KeyRing,
    add_key,
    hash_key,
    load_keys,
    new_key,
    parse_keys,
    revoke_key,
)
from recommender.core.errors import ConfigError

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def entry(name: str, secret: str, **extra: object) -> dict[str, object]:
    return {"name": name, "sha256": hash_key(secret), "scopes": ["offers:read"], **extra}


def test_a_key_is_stored_as_its_sha256_and_new_keys_are_32_random_bytes() -> None:
    assert hash_key("abc") == ABC_SHA256
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(k) == 43 and "=" not in k for k in keys)  # 32 bytes, URL-safe base64


def test_find_returns_the_entry_of_the_presented_key_only() -> None:
    ring = parse_keys({"keys": [entry("a", "key-a"), entry("b", "key-b")]})
    assert ring.find("key-b").name == "b"  # type: ignore[union-attr]
    assert ring.find("key-c") is None
    assert ring.find(hash_key("key-a")) is None  # the stored hash is not a key
    assert KeyRing().find("key-a") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keys": [entry("a", "k", scopes=["root"])]}, "scopes"),
        ({"keys": [entry("a", "k", scopes=[])]}, "scopes"),
        ({"keys": [{"name": "a", "sha256": "secret", "scopes": ["admin"]}]}, "sha256"),
        ({"keys": [entry("a", "k", origins=["shop.example"])]}, "origin"),
        ({"keys": [entry("a", "k", event_types=["purchase", "refund"])]}, "event_types"),
        ({"keys": [entry("a", "k", reasons="none")]}, "reasons"),
        ({"keys": [entry("a", "k", rate={"per_second": 0, "burst": 1})]}, "per_second"),
        ({"keys": [entry("a", "k"), entry("a", "j")]}, "two keys are named 'a'"),
        ({"keys": [entry("a", "k", key="plain")]}, "Extra inputs"),
    ],
)
def test_a_bad_keys_file_is_a_config_error_naming_the_problem(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_keys(data, "keys.yaml")


def test_create_appends_and_revoke_removes_and_the_file_holds_no_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    first = add_key(path, "shop", ["events:write"], origins=["https://shop.example"])
    second = add_key(path, "ads", ["offers:read"], reasons="generic", rate=(5.0, 10))
    text = path.read_text()
    assert first not in text and second not in text
    assert path.stat().st_mode & 0o777 == 0o600
    ring = load_keys(path)
    assert [e.name for e in ring.keys] == ["shop", "ads"]
    assert ring.find(second).generic_reasons  # type: ignore[union-attr]
    assert ring.origins == {"https://shop.example"}
    with pytest.raises(ConfigError, match="exists"):
        add_key(path, "shop", ["admin"])
    revoke_key(path, "shop")
    assert load_keys(path).find(first) is None
    with pytest.raises(ConfigError, match="no key named 'shop'"):
        revoke_key(path, "shop")


def test_the_key_file_is_reread_after_a_change_and_a_broken_file_keeps_the_last_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.yaml"
    first = add_key(path, "one", ["offers:read"])
    now = [0.0]
    keys = KeyFile(path, check_every_s=2.0, clock=lambda: now[0])
    second = add_key(path, "two", ["offers:read"])
    now[0] = 1.9
    assert keys.current().find(second) is None  # not checked yet
    now[0] = 2.0
    assert keys.current().find(second) is not None
    path.write_text("keys: [{name: broken")
    now[0] = 4.0
    ring = keys.current()
    assert ring.find(first) is not None and ring.find(second) is not None
    path.write_text("keys: []\n")
    now[0] = 6.0
    assert keys.current().find(first) is None


def test_a_missing_keys_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ZMOT_API_KEYS_FILE"):
        KeyFile(tmp_path / "absent.yaml")


def test_urls_lose_their_password_in_logs() -> None:
    from recommender.core.settings import redact_url

    assert redact_url("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("rediss://zmot:s3cret@db:6380/1") == "rediss://zmot:***@db:6380/1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
