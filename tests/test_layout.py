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


# --- the README's Layout table against the tree ------------------------------------------------

PACKAGES = {
    "core": "recommender.core",
    "offline": "recommender.offline",
    "adapters": "recommender.adapters",
    "stream": "stream",
    "api": "api",
    "cli": "cli",
}
"""Names the "may import" column uses, and the modules they stand for."""


def layout_rows(readme: str) -> dict[str, tuple[str, str]]:
    """``{"recommender/core": (what lives there, may import)}`` from the README's Layout table."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`").rstrip("/")] = (cells[1], cells[2])
    return rows


def allowed(may_import: str, own: str) -> set[str]:
    """The project modules a package may import, from its "may import" cell."""
    if may_import.startswith("everything"):
        names = set(PACKAGES.values())
        return names - {"cli"} if "but cli" in may_import else names
    words = {w.strip(" ,.") for w in may_import.split()}
    return {module for name, module in PACKAGES.items() if name in words} | {own}


def python_packages() -> list[str]:
    """Package directories of the tree (relative paths), tests and benchmarks included."""
    tops = [d for d in ROOT.iterdir() if d.is_dir() and not d.name.startswith(".")]
    inits = [init for top in tops if top.name != "build" for init in top.rglob("__init__.py")]
    found = {str(init.parent.relative_to(ROOT)) for init in inits}
    return sorted(found - {"recommender"})


def test_the_layout_table_names_every_package_of_the_tree() -> None:
    rows = layout_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    assert {"recommender/core", "stream", "api", "cli"} <= set(rows)
    missing = []
    for package in python_packages():
        parent, _, name = package.rpartition("/")
        in_parent_row = parent in rows and f"`{name}/`" in rows[parent][0]
        if package not in rows and not in_parent_row:
            missing.append(package)
    assert missing == [], f"packages the README's Layout does not describe: {missing}"
    gone = [row for row in rows if not (ROOT / row).is_dir()]
    assert gone == [], f"Layout rows with no folder: {gone}"


def project_imports(path: Path) -> set[str]:
    """The project packages (values of ``PACKAGES``) that a file imports."""
    out = set()
    for name in imported_modules(path.read_text(encoding="utf-8")):
        for module in PACKAGES.values():
            if name == module or name.startswith(module + "."):
                out.add(module)
    return out


def test_each_package_imports_only_what_the_layout_allows() -> None:
    rows = layout_rows((ROOT / "README.md").read_text(encoding="utf-8"))
    offenders = []
    for row, (_, may_import) in rows.items():
        folder = ROOT / row
        if not (folder / "__init__.py").exists():
            continue  # tests/, benchmarks/: checked above for cli
        own = row.replace("/", ".")
        own = next((m for m in PACKAGES.values() if own == m or own.startswith(m + ".")), own)
        ok = allowed(may_import, own)
        for path in sorted(folder.rglob("*.py")):
            bad = project_imports(path) - ok
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


@pytest.mark.parametrize(
    ("cell", "own", "expected"),
    [
        ("nothing else of ours", "recommender.core", {"recommender.core"}),
        ("core", "recommender.offline", {"recommender.core", "recommender.offline"}),
        ("core, adapters", "stream", {"recommender.core", "recommender.adapters", "stream"}),
        ("everything but cli", "tests", set(PACKAGES.values()) - {"cli"}),
    ],
)
def test_the_may_import_cell_is_read_as_written(cell: str, own: str, expected: set[str]) -> None:
    assert allowed(cell, own) == expected
