"""The online core stays light: importing it loads no training, plotting, I/O or web library.

The worker and the API import ``recommender.core`` on every start; a heavy or I/O dependency
there would slow every process and blur where the edges are (``recommender/__init__.py``).
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import recommender.core

FORBIDDEN = (
    "lightfm",
    "scipy",
    "matplotlib",
    "tqdm",
    "prometheus_client",
    "redis",
    "aiokafka",
    "faust",
    "fastapi",
)

CHECK = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def core_modules() -> list[str]:
    return [f"recommender.core.{m.name}" for m in pkgutil.iter_modules(recommender.core.__path__)]


def loaded_by(modules: list[str]) -> set[str]:
    """Top-level packages in ``sys.modules`` of a fresh interpreter after importing ``modules``."""
    out = subprocess.run(
        [sys.executable, "-c", CHECK, *modules], capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


def test_every_core_module_is_seen() -> None:
    modules = core_modules()
    for name in ("events", "features", "profile", "journey", "model", "scoring", "offers"):
        assert f"recommender.core.{name}" in modules
    for name in ("placements", "arbitration", "exploration", "reasons", "settings", "runtime"):
        assert f"recommender.core.{name}" in modules


def test_importing_the_core_loads_no_heavy_or_io_library() -> None:
    loaded = loaded_by(core_modules())
    assert "recommender" in loaded and "numpy" in loaded  # the check sees what it imports
    assert sorted(loaded & set(FORBIDDEN)) == []


def test_the_check_sees_a_forbidden_import() -> None:
    # The offline package may load them: the same check must notice it there.
    assert {"scipy", "tqdm"} <= loaded_by(["recommender.offline.training"])
