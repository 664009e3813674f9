"""docs/architecture.md's module table says what each module never imports; this keeps it true.

The rules are read from the document itself (its "never imports" column), so the table and the
code cannot drift apart silently: a new import that breaks a rule fails here, naming the file and
the line, and a rule naming a module that no longer exists fails too. Imports are checked where
they are written (lazy ones inside functions included), not transitively: ``presentation/`` may
reach libvips through ``Renderer.layout``, but never imports pyvips itself.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "iiif_server"
DOC = ROOT / "docs" / "architecture.md"

#: What a name in the "never imports" column stands for: top-level packages that may not be imported.
LIBRARIES = {"Flask": ("flask",), "pyvips": ("pyvips",)}
OURS = "anything of ours"

_ROW = re.compile(r"^\| (?P<modules>`[^|]+`) \| [^|]* \| (?P<never>[^|]*) \|$")


def rules() -> list[tuple[str, list[Path], tuple[str, ...]]]:
    """(row label, files it covers, forbidden top-level import names) for every row with a rule."""
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line.strip())
        if not match or not match["never"].strip():
            continue
        never = re.sub(r"\([^)]*\)", "", match["never"])  # "(except via Renderer.layout)" explains, not a rule
        names = [name.strip() for name in never.split(",") if name.strip()]
        forbidden = tuple(
            "iiif_server" if name == OURS else package for name in names for package in LIBRARIES.get(name, (name,))
        )
        for module in re.findall(r"`([^`]+)`", match["modules"]):
            target = PACKAGE / module
            files = sorted(target.rglob("*.py")) if module.endswith("/") else [target]
            found.append((module, files, forbidden))
    return found


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, absolute top-level package) of every import in ``path``; relative imports are ``iiif_server``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append((node.lineno, "iiif_server" if node.level else (node.module or "").split(".")[0]))
    return names


def test_the_document_states_rules_for_the_core_modules() -> None:
    covered = {module for module, _, _ in rules()}
    assert {"config.py", "errors.py", "image/plan.py", "image/parse.py", "presentation/", "cache/"} <= covered


@pytest.mark.parametrize(("module", "files", "forbidden"), rules(), ids=[rule[0] for rule in rules()])
def test_modules_never_import_what_the_architecture_forbids(
    module: str, files: list[Path], forbidden: tuple[str, ...]
) -> None:
    assert files and all(path.is_file() for path in files), f"docs/architecture.md names {module}, which is gone"
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in files
        for line, name in imported(path)
        if name in forbidden
    ]
    assert broken == [], f"{module} must never import {', '.join(forbidden)}"
