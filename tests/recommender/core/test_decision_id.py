"""Decision ids (:func:`~recommender.core.arbitration.explain.new_decision_id`) are what
``uuid.uuid4().hex`` gives: 32 hex digits of a version 4, RFC 4122 UUID, all different, and
a forked process never repeats its parent's."""

from __future__ import annotations

import os
import uuid

import pytest

from recommender.core.arbitration import explain
from recommender.core.arbitration.explain import new_decision_id


def test_ids_are_uuid4_hex_and_all_different() -> None:
    ids = [new_decision_id() for _ in range(3 * explain._ID_POOL + 5)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.hex == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_the_bits_are_those_uuid_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = bytes(range(200, 216)) * explain._ID_POOL
    monkeypatch.setattr(explain.os, "urandom", lambda n: raw[:n])
    explain._ids.clear()
    assert new_decision_id() == uuid.UUID(bytes=raw[:16], version=4).hex
    explain._ids.clear()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_its_own_ids() -> None:
    new_decision_id()  # the parent holds drawn ids
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        os.write(write, str(len(explain._ids)).encode())
        os._exit(0)
    os.close(write)
    held = os.read(read, 32)
    os.close(read)
    os.waitpid(pid, 0)
    assert held == b"0"
