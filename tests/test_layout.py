"""The tests and benchmarks use the packages, never the ``zmot`` command's code: a CLI command
is tested by running the installed ``zmot`` script, so ``cli`` stays free to change."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = "cli"


def imported_modules(source: str) -> list[str]:
    """Every module an ``import`` or ``from ... import`` statement in ``source`` names
    (for ``from a import b`` both ``a`` and ``a.b``, since ``b`` may be a module)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imports_cli(source: str) -> bool:
    return any(
        name == FORBIDDEN or name.startswith(FORBIDDEN + ".") for name in imported_modules(source)
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import cli", True),
        ("import cli.main as m", True),
        ("from cli import infra", True),
        ("from cli.import_cmd import register", True),
        ("def f():\n    from cli import demo\n", True),
        ("import click", False),
        ("from clients import cli", False),
        ("from recommender.adapters import localstack", False),
        ("from . import cli", False),
    ],
)
def test_the_check_sees_every_form_of_import(source: str, expected: bool) -> None:
    assert imports_cli(source) is expected


def test_tests_and_benchmarks_do_not_import_cli() -> None:
    files = sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])
    assert files
    offenders = [
        str(path.relative_to(ROOT))
        for path in files
        if imports_cli(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], f"import cli; run the `zmot` script instead: {offenders}"
