"""The compact codec's name resolution (vocabulary ids and inline names) answers exactly as the
straightforward code it replaced, frozen here, on random references and inline parts, also the
malformed ones (the same error, with the same message, or the same unknown ids)."""

from __future__ import annotations

import random
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from recommender.adapters.codec import _INLINE_HEADS, _NAME_SEP, UnknownIds, _resolve


def reference(refs: list[int], inline_raw: bytes, table: dict[int, str]) -> list[str]:
    if 0 not in refs:
        if inline_raw:
            raise ValueError("inline names after a profile without any")
        try:
            return list(map(table.__getitem__, refs))
        except KeyError:
            raise UnknownIds({r for r in refs if r not in table}) from None
    parts = inline_raw.split(_NAME_SEP)
    if len(parts) != refs.count(0):
        raise ValueError(f"{len(parts)} inline names for {refs.count(0)} references")
    if not all(part and part[0] < len(_INLINE_HEADS) for part in parts):
        raise ValueError("an inline name without a valid code byte")
    names: list[str | None] = list(map(table.get, refs))
    at = -1
    for part in parts:
        at = refs.index(0, at + 1)
        names[at] = _INLINE_HEADS[part[0]] + part[1:].decode("utf-8", "surrogatepass")
    if None in names:
        raise UnknownIds({r for r in refs if r and r not in table})
    return names  # type: ignore[return-value]


def outcome(resolve: Callable[..., list[str]], *args: object) -> tuple[str, object]:
    try:
        return "ok", resolve(*args)
    except UnknownIds as exc:
        return "unknown", exc.ids
    except ValueError as exc:
        return type(exc).__name__, str(exc)


def random_case(rng: random.Random) -> tuple[list[int], bytes, dict[int, str]]:
    table = {i: f"name-{i}" for i in range(1, 30) if rng.random() < 0.9}
    refs = [rng.choice([0, 0, *range(1, 32)]) for _ in range(rng.randint(0, 12))]
    words = ["tv", "sn\u00f6", "", "x" * 3, "\u2603"]
    parts = [bytes([rng.choice([1, 1, 2, 0])]) + rng.choice(words).encode() for r in refs if not r]
    roll = rng.random()
    if roll < 0.1 and parts:
        parts[rng.randrange(len(parts))] = b""  # no code byte
    elif roll < 0.2 and parts:
        parts[rng.randrange(len(parts))] = bytes([rng.choice([3, 7, 0xFE])]) + b"q"  # bad code
    elif roll < 0.3:
        parts.append(b"\x01extra")  # one name too many
    elif roll < 0.35 and parts:
        parts[rng.randrange(len(parts))] = b"\x01\xc3"  # truncated UTF-8
    return refs, _NAME_SEP.join(parts), table


@pytest.mark.parametrize("seed", range(30))
def test_resolve_is_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        refs, raw, table = random_case(rng)
        vocab = SimpleNamespace(names=table)
        got = outcome(_resolve, list(refs), raw, vocab)
        assert got == outcome(reference, list(refs), raw, table), (refs, raw)
