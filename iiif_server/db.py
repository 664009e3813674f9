"""SQLite details shared by the change log and the fixity catalogue."""

from __future__ import annotations

import sqlite3
import time


def enable_wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Put the file in WAL mode (persistent), waiting out other processes doing the same.

    Switching the journal mode needs an exclusive lock and SQLite answers "database is locked" at
    once, without its busy handler, while another process holds any lock: gunicorn workers or
    ingest workers opening a new file together would otherwise crash on start.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.01)
