"""Key names and hash tags (:mod:`recommender.adapters.keys`), against Redis Cluster's own slot
function (redis-py's CRC16 of the hash tag): every key of one person in one slot, whatever the
id holds; the privacy record without the raw id; both key schemes told apart exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from redis.crc import key_slot

from recommender.adapters.keys import (
    counters_key,
    decision_key,
    decisions_key,
    layout_key,
    links_key,
    old_to_new,
    person_key,
    profile_key,
    scan_pattern,
    user_of,
    user_tag,
)
from recommender.core.privacy import person_hash
from recommender.core.settings import Settings

P = "zmot:"
IDS = ["alice", "anna@example.com", "{x}", "}{", "a}b{c", "{}", ":", "ümlaut-ß", "x" * 300]


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def test_exact_names() -> None:
    tag = "{" + person_hash("alice")[:8] + "}"
    assert user_tag("alice") == tag
    assert profile_key(P, "alice") == f"zmot:profile:{tag}alice"
    assert links_key(P, "alice") == f"zmot:links:{tag}alice"
    assert decisions_key(P, "alice") == f"zmot:udec:{tag}alice"
    assert person_key(P, "alice") == f"zmot:person:{tag}{person_hash('alice')}"
    assert counters_key(P, 3) == "zmot:agg:{p3}"
    assert decision_key(P, "d-1") == "zmot:dec:d-1"
    assert layout_key(P) == "zmot:layout"


@pytest.mark.parametrize("user", IDS)
def test_every_key_of_one_person_is_in_one_slot(user: str) -> None:
    keys = [f(P, user) for f in (profile_key, links_key, decisions_key, person_key)]
    assert len({slot(k) for k in keys}) == 1, keys
    # the record that outlives the person holds no raw id
    assert person_key(P, user) == f"{P}person:{user_tag(user)}{person_hash(user)}"


@given(st.text(min_size=1, max_size=40), st.sampled_from(["zmot:", "a:b:", "shop-7:", ""]))
def test_slots_and_names_hold_for_any_id_and_prefix(user: str, prefix: str) -> None:
    keys = [f(prefix, user) for f in (profile_key, links_key, decisions_key, person_key)]
    assert len({slot(k) for k in keys}) == 1
    for kind, f in (("profile", profile_key), ("links", links_key), ("udec", decisions_key)):
        assert user_of(prefix, kind, f(prefix, user)) == user
        assert old_to_new(prefix, f(prefix, user)) is None  # already the new scheme
        assert old_to_new(prefix, f"{prefix}{kind}:{user}") == f(prefix, user)


def test_people_spread_over_the_slots() -> None:
    slots = {slot(profile_key(P, f"user-{i}")) for i in range(2000)}
    assert len(slots) > 1800  # 2000 draws from 16384 slots: about 1,885 distinct expected
    thirds = [sum(1 for s in slots if s * 3 // 16384 == n) for n in range(3)]
    assert min(thirds) > len(slots) / 3 * 0.85  # a 3-master cluster's slot ranges


def test_partition_keys_of_one_partition_share_a_slot_across_prefixes() -> None:
    assert slot(counters_key("a:", 5)) == slot(counters_key("b:", 5)) == slot("x{p5}")
    assert len({slot(counters_key(P, p)) for p in range(12)}) == 12


def test_old_keys_map_to_new_names() -> None:
    digest = person_hash("bob")
    assert old_to_new(P, "zmot:profile:bob") == profile_key(P, "bob")
    assert old_to_new(P, "zmot:links:bob") == links_key(P, "bob")
    assert old_to_new(P, "zmot:udec:bob") == decisions_key(P, "bob")
    assert old_to_new(P, f"zmot:person:{digest}") == person_key(P, "bob")
    assert old_to_new(P, "zmot:agg:11") == counters_key(P, 11)
    for unchanged in (
        "zmot:dec:d-1",  # decision records keep their names
        "zmot:layout",
        "zmot:rate/LIMITER/x",
        "zmot:person:not-a-digest",
        "zmot:agg:{p3}",
        "other:profile:bob",  # another prefix
        person_key(P, "bob"),
    ):
        assert old_to_new(P, unchanged) is None, unchanged
    assert user_of(P, "profile", "zmot:profile:bob") is None
    assert user_of(P, "profile", "zmot:profile:{00000000}bob") is None  # a tag that is not bob's


def test_scan_pattern_escapes_the_prefix() -> None:
    assert scan_pattern("zmot:", "profile") == "zmot:profile:*"
    assert scan_pattern("a*b?[c]\\:", "agg") == "a\\*b\\?\\[c\\]\\\\:agg:*"


@pytest.mark.parametrize("prefix", ["{zmot}:", "zmot}:", "a{"])
def test_a_prefix_with_braces_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="hash tag"):
        Settings(redis_prefix=prefix)
