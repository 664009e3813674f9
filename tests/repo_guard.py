"""The suite must not write into the repository tree: a session that did fails, naming the paths.

Every test, and every process it starts, runs in an empty temporary folder, so settings relative to
the working folder (``cache/``, ``manifests/state/``, ``demo-images/``) never land in the checkout.
Anything else is caught by comparing, at session start and finish, every file git reports as
changed, untracked or ignored (ignored folders walked, so a write into an existing ``cache/`` or
``demo-images/`` is caught too), with its size and mtime. Tool caches are left out: they are the
tools' business.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Written by the tools that run the suite (pip -e, pytest, Python, ruff, mypy, hypothesis), not by tests.
TOOL_CACHES = frozenset({".venv", ".pytest_cache", "__pycache__", ".ruff_cache", ".mypy_cache", ".hypothesis"})

Snapshot = dict[str, tuple[int, int]]


def snapshot(repo: Path) -> Snapshot | None:
    """(mtime, size) of every changed, untracked or ignored file under ``repo``; None outside a git checkout."""
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return None
    listed = subprocess.run(
        [git, "status", "--porcelain=v1", "-z", "--ignored=matching", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode(errors="surrogateescape")
    found: Snapshot = {}
    entries = iter(listed.split("\0"))
    for entry in entries:
        if not entry:
            continue
        status, path = entry[:2], entry[3:].rstrip("/")
        if status[0] in "RC":
            next(entries, None)  # the rename's source path follows
        if _is_tool_cache(path):
            continue
        full = repo / path
        if full.is_dir() and not full.is_symlink():
            for folder, dirs, files in os.walk(full):
                dirs[:] = [d for d in dirs if d not in TOOL_CACHES]
                for name in files:
                    _stat_into(found, repo, Path(folder) / name)
        else:
            _stat_into(found, repo, full)
    return found


def written(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths created, changed or removed between two snapshots."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


def _is_tool_cache(path: str) -> bool:
    return any(part in TOOL_CACHES or part.endswith(".egg-info") for part in path.split("/"))


def _stat_into(found: Snapshot, repo: Path, path: Path) -> None:
    try:
        info = path.lstat()
    except OSError:
        info = None  # removed: recorded as such, so a test deleting a tracked file is caught too
    found[path.relative_to(repo).as_posix()] = (info.st_mtime_ns, info.st_size) if info else (-1, -1)


@pytest.fixture(scope="session", autouse=True)
def work_outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's working folder: empty, temporary, never the checkout."""
    previous = os.getcwd()
    folder = tmp_path_factory.mktemp("cwd")
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(previous)


_KEY = pytest.StashKey[Snapshot | None]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_KEY] = snapshot(REPO)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(_KEY, None)
    if before is None:
        return
    after = snapshot(REPO)
    changed = written(before, after or {})
    if changed:
        shown = ", ".join(changed[:20]) + (f" and {len(changed) - 20} more" if len(changed) > 20 else "")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = f"the tests wrote into the repository tree (use tmp_path): {shown}"
        if reporter is not None:
            reporter.write_line(f"FAILED repository guard: {message}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
