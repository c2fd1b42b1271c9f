"""The README's Configuration table against the settings object: every variable it names is a
setting (or the one read elsewhere, ``ZMOT_NATIVE``) and shows that setting's default, so a
changed default cannot leave the docs behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recommender.core.hybrid import NATIVE_ENV
from recommender.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE_SETTINGS = {NATIVE_ENV: "1"}
"""Variables read outside :class:`Settings`, with the default their reader assumes."""

ROW = re.compile(r"^\| (`ZMOT_[^|]*) \| ([^|]*) \|", re.M)


def table_defaults(markdown: str) -> dict[str, str]:
    """``{"ZMOT_X": "shown default"}`` from the Configuration table's rows. A row may name
    several variables (``A`` / ``B``, ``A``, ``B``, or ``A`` / ``_SUFFIX`` for ``A``'s
    prefix and the suffix) with as many defaults separated by `` / `` (one default for all
    when the names are separated by commas)."""
    section = markdown.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    found: dict[str, str] = {}
    for names_cell, defaults_cell in ROW.findall(section):
        names = re.findall(r"`([A-Z0-9_]+)`", names_cell)
        full: list[str] = []
        for name in names:
            if name.startswith("_"):  # `_USERNAME` after `ZMOT_KAFKA_SASL_MECHANISM`
                stem = full[0].rsplit("_", 1)[0]
                name = stem + name
            full.append(name)
        defaults = [d.strip().strip("`") for d in defaults_cell.split(" / ")]
        if len(defaults) == 1:
            defaults *= len(full)
        assert len(defaults) == len(full), f"row {names_cell!r}: {defaults_cell!r}"
        found.update(zip(full, defaults, strict=True))
    return found


def shown(value: object) -> str:
    """A default as the table writes it: ``unset`` for None, ``72`` for 72.0, ``false``."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_the_parser_reads_combined_rows() -> None:
    text = (
        "## Configuration\n| variable | default | meaning |\n|---|---|---|\n"
        "| `ZMOT_A_HOST` / `ZMOT_A_PORT` | `h` / `1` | x |\n"
        "| `ZMOT_S_MECHANISM` / `_USER` | `M` / unset | x |\n"
        "| `ZMOT_P`, `ZMOT_Q` | unset | x |\n## Next\n| `ZMOT_Z` | `9` | x |\n"
    )
    assert table_defaults(text) == {
        "ZMOT_A_HOST": "h",
        "ZMOT_A_PORT": "1",
        "ZMOT_S_MECHANISM": "M",
        "ZMOT_S_USER": "unset",
        "ZMOT_P": "unset",
        "ZMOT_Q": "unset",
    }


@pytest.mark.parametrize(
    ("value", "text"), [(None, "unset"), (72.0, "72"), (0.02, "0.02"), (False, "false"), (12, "12")]
)
def test_defaults_are_written_as_the_table_writes_them(value: object, text: str) -> None:
    assert shown(value) == text


def test_every_variable_in_the_readme_table_shows_its_default() -> None:
    documented = table_defaults((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(documented) > 30
    actual = {
        f"ZMOT_{name.upper()}": shown(field.default)
        for name, field in Settings.model_fields.items()
    }
    actual.update(OUTSIDE_SETTINGS)
    unknown = sorted(set(documented) - set(actual))
    assert unknown == [], f"the README names variables that are no setting: {unknown}"
    wrong = {
        name: (text, actual[name]) for name, text in documented.items() if text != actual[name]
    }
    assert wrong == {}, f"README default vs code default: {wrong}"
