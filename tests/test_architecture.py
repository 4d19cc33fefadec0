"""The package layering of docs/design.md ("Architecture"), enforced over the import graph.

Every package has a rank; a module may import only packages of a lower rank (its own package
aside). So every arrow points down, there are no cycles between packages, and an interface
(CLI, web page) can never be imported by the logic it presents.
"""

from __future__ import annotations

import ast
from pathlib import Path

import praxisbackup

ROOT = Path(praxisbackup.__file__).parent

#: Lower ranks are further down. Keep in step with docs/design.md.
RANKS = {
    "errors": 0,
    "__init__": 0,
    "platform": 1,
    "storage": 2,
    "engine": 3,
    "model": 4,
    "catalog": 5,
    "credentials": 5,
    "services": 5,
    "practice": 5,
    "media": 6,
    "report": 6,
    "notify": 7,
    "app": 8,
    "cli": 9,
    "web": 9,
    "torture": 10,  # the harness drives everything, the command line included
}


def package_of(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0].removesuffix(".py") if len(rel) == 1 else rel[0]


def imported_packages(path: Path) -> set[str]:
    """Top-level praxisbackup packages a module imports, at any depth (lazy imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; use praxisbackup.<package>")
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
        for name in names:
            if name == "praxisbackup" and isinstance(node, ast.ImportFrom):
                found.update(a.name for a in node.names)
            elif name.startswith("praxisbackup."):
                found.add(name.split(".")[1])
    return found


def test_every_import_points_down() -> None:
    violations = []
    modules = sorted(ROOT.rglob("*.py"))
    assert len(modules) > 50
    for path in modules:
        own = package_of(path)
        assert own in RANKS, f"{own} has no rank: add it to RANKS and docs/design.md"
        for imported in imported_packages(path) - {own}:
            target = "__init__" if imported == "__version__" else imported
            if RANKS.get(target, 99) >= RANKS[own]:
                violations.append(f"{path.relative_to(ROOT)} ({own}) imports {target}")
    assert violations == []


def test_the_layer_test_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "x.py"
    module.write_text("from praxisbackup.cli.main import cli\nimport praxisbackup.app.job\n")
    assert imported_packages(module) == {"cli", "app"}
