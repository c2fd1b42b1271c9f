"""The ends of the services' log files, for error messages that show why a start failed."""

from __future__ import annotations

import os
from pathlib import Path


def last_lines(text: str, n: int) -> str:
    """The last ``n`` lines of ``text``."""
    return "\n".join(text.rstrip().splitlines()[-n:])


def size(path: Path) -> int:
    """The size of ``path`` in bytes, 0 if it does not exist (where a new start's log begins)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tail(path: Path, n: int = 20, since: int = 0) -> str:
    """The last ``n`` lines written to a log file after byte ``since`` (Java stack frames
    left out), labelled, or '' if there are none."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(since if since <= fh.tell() else 0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if not line.startswith("\tat ")]
    if not "".join(lines).strip():
        return ""
    return f"--- last lines of {path} ---\n" + "\n".join(lines[-n:])


def tails(*files: tuple[Path, int]) -> str:
    """:func:`tail` of each (file, since) pair, or a note that there was no output."""
    return "\n".join(t for t in (tail(f, since=pos) for f, pos in files) if t) or "(no log output)"
