"""SQLite stores created by several processes at once (gunicorn or ingest workers starting together)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from iiif_server.ingest.fixity import FixityCatalogue
from iiif_server.presentation.changes import ChangeLog


def _open_both(root: str) -> str:
    try:
        FixityCatalogue(Path(root))
        ChangeLog(Path(root) / "changes.sqlite")
    except Exception as err:  # reported to the parent, which fails the test with it
        return f"{type(err).__name__}: {err}"
    return "ok"


def test_processes_creating_the_same_new_files_at_once_all_succeed(tmp_path: Path) -> None:
    """Switching a new file to WAL raced: 'database is locked' in about 1 round in 10 before the fix."""
    context = multiprocessing.get_context("fork")
    results: list[str] = []
    for round_ in range(15):
        root = tmp_path / str(round_)
        root.mkdir()
        with context.Pool(6) as pool:
            results += pool.map(_open_both, [str(root)] * 6)
    assert set(results) == {"ok"}
    assert FixityCatalogue(tmp_path / "0").entries() == []
    assert ChangeLog(tmp_path / "0" / "changes.sqlite").count() == 0
