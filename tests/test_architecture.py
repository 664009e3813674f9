"""docs/architecture.md's module table says what each module never imports; this keeps it true.

The rules are read from the document itself (its "never imports" column), so the table and the
code cannot drift apart silently: a new import that breaks a rule fails here, naming the file and
the line, and a rule naming a module that no longer exists fails too. Imports are checked where
they are written (lazy ones inside functions included), not transitively: ``presentation/`` may
reach libvips through the inspector (``image/inspector.py``), but never imports pyvips itself.
A rule may name one of our modules by its path (```image/render.py```, or a package ```image/```).
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
        never = re.sub(r"\([^)]*\)", "", match["never"])  # "(except via the inspector)" explains, not a rule
        names = [name.strip().strip("`") for name in never.split(",") if name.strip()]
        forbidden = tuple(package for name in names for package in _packages(name))
        for module in re.findall(r"`([^`]+)`", match["modules"]):
            target = PACKAGE / module
            files = sorted(target.rglob("*.py")) if module.endswith("/") else [target]
            found.append((module, files, forbidden))
    return found


def _packages(name: str) -> tuple[str, ...]:
    """The dotted names a "never imports" entry stands for: a library's packages, ours, or one of our modules."""
    if name == OURS:
        return ("iiif_server",)
    if name.endswith((".py", "/")):
        return ("iiif_server." + name.removesuffix(".py").strip("/").replace("/", "."),)
    return LIBRARIES.get(name, (name,))


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``path``, relative ones resolved; ``from a import b``
    gives ``a.b`` (``b`` may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = list(path.with_suffix("").relative_to(ROOT).parts[:-1])  # a package's own is its __init__'s
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return names


def _is_within(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


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
        if any(_is_within(name, rule) for rule in forbidden)
    ]
    assert broken == [], f"{module} must never import {', '.join(forbidden)}"


def import_graph() -> dict[str, set[str]]:
    """Our modules and the modules of ours each imports (lazy imports included; ``from . import x``
    counts as importing ``x`` when ``x`` is a module, else its package)."""
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(ROOT).parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                submodules = {f"{target}.{alias.name}" for alias in node.names} & modules.keys()
                graph[name] |= submodules or ({target} & modules.keys())
            elif isinstance(node, ast.Import):
                graph[name] |= {alias.name for alias in node.names} & modules.keys()
        graph[name].discard(name)
    return graph


def test_no_import_cycles_among_our_modules() -> None:
    """A cycle (even through a lazy import) means two modules that should be one, or a third
    missing; e.g. the ingest queue and the CLI report once imported each other."""
    graph = import_graph()
    assert {"iiif_server.ingest.queue", "iiif_server.ingest.notify"} <= graph.keys()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


#: What only the composition root (``services.py``) builds from Settings; everything else asks it.
SERVICES = {"build_caches", "FileSource", "Inspector", "Renderer", "ReaderPool", "ImageService", "Catalogue", "Lane"}


def test_services_are_built_in_the_composition_root_only() -> None:
    """One place turns Settings into services (app, CLI, RQ worker, notifications alike), so a setting
    cannot mean one thing to the server and another to a CLI command or a worker."""
    built = [
        f"{path.relative_to(ROOT)}:{node.lineno} builds {node.func.id}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "services.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SERVICES
    ]
    assert built == []


def test_no_module_keeps_state_in_globals() -> None:
    """Services travel as values (e.g. the RQ worker's jobs carry its services), never via ``global``."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Global)
    ]
    assert found == []
