"""Every Redis access of the packages stays cluster-safe, checked on the source (a new store
or a rewritten script cannot slip past the Redis Cluster tests by running only on one Redis):
scripts are registered through :func:`recommender.adapters.redis_client.register_script`
(redis-py's cluster pipeline refuses the EVALSHA of ``client.register_script``), and nothing
calls a multi-key or transactional command that a cluster refuses across slots."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("recommender", "stream", "api", "cli")
CLIENT_MODULE = ROOT / "recommender" / "adapters" / "redis_client.py"

REFUSED = {
    "register_script": "use recommender.adapters.redis_client.register_script(client, text)",
    "mget": "one GET/HMGET per key in a non-transactional pipeline",
    "mset": "one SET per key in a non-transactional pipeline",
    "msetnx": "one SET per key",
    "multi": "no MULTI: a script of one key, or keys sharing a hash tag",
    "watch": "no WATCH/MULTI",
    "transaction": "no MULTI",
    "sunion": "set operations cross slots",
    "sinter": "set operations cross slots",
    "sdiff": "set operations cross slots",
}


RECEIVERS = ("client", "pipe", "redis", "registered_client")
"""How the packages name a Redis client or pipeline (``client``, ``self.client``, ``pipe``...)."""


def calls(path: Path) -> list[tuple[int, str, ast.Call]]:
    """(line, method, call) of every method call on something named like a Redis client."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        (node.lineno, node.func.attr, node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and ast.unparse(node.func.value).split(".")[-1].endswith(RECEIVERS)
    ]


def sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_no_redis_call_that_a_cluster_refuses() -> None:
    found = []
    for path in sources():
        if path == CLIENT_MODULE:
            continue
        for line, name, call in calls(path):
            if name in REFUSED:
                found.append(f"{path.relative_to(ROOT)}:{line}: .{name}(): {REFUSED[name]}")
            if name == "pipeline":
                for kw in call.keywords:
                    if kw.arg == "transaction" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        found.append(f"{path.relative_to(ROOT)}:{line}: a transactional pipeline")
    assert found == []


@pytest.mark.parametrize("name", ["register_script", "mget", "watch"])
def test_the_check_finds_what_it_looks_for(tmp_path: Path, name: str) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        f"async def f(self, client, other):\n    self.client.{name}('a')\n"
        f"    other.{name}('b')\n    return client.{name}('c')\n"
    )
    assert [n for _, n, _ in calls(sample)] == [name, name]  # not other's
