"""Where pure logic finds a ``zmot_native`` function: in :data:`recommender.core.hybrid.NATIVE`
(the module loaded once; None when not built or ``ZMOT_NATIVE=0``), read at each call so that
turning it off (tests set ``hybrid.NATIVE``) takes effect at once, without an import statement
per call on the hot path."""

from __future__ import annotations

from types import ModuleType
from typing import Any

_hybrid: ModuleType | None = None


def native(name: str) -> Any:
    """``zmot_native``'s ``name`` when the native module serves and has it, else None."""
    global _hybrid
    module = _hybrid
    if module is None:
        from recommender.core import hybrid  # hybrid imports the modules that ask here

        module = _hybrid = hybrid
    return getattr(module.NATIVE, name, None)
