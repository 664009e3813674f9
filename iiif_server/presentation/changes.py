"""The persistent change log behind the Change Discovery 1.0 activity stream, in SQLite.

Callers hand ``record`` the complete published state (path -> object type and
content hash); the log diffs it against the stored state and appends Create,
Update and Delete activities. Deriving activities from a diff, instead of having
every publishing code path report its own changes, keeps the stream honest: it
cannot miss a change or report one twice, and rebuilding everything unchanged
appends nothing.

The file is shared by several gunicorn worker processes and their threads, so
every call opens and closes its own connection (never one shared across threads),
the database runs in WAL mode (readers never block the writer), waits on locks
instead of failing (busy timeout), and each write diffs *and* appends inside one
``BEGIN IMMEDIATE`` transaction: two workers recording the same state serialise,
and the second one sees the first one's result and appends nothing.

End times are whole UTC seconds, as the spec's examples (``2026-11-25T10:00:00Z``).
A fractional clock reading is rounded *up*: the spec requires the object to be
available at or before ``endTime`` and harvesters stop at activities dated before
their last crawl, so an end time truncated to before the real change could be
skipped forever, while one rounded up is at worst seen twice. End times never
decrease along the stream (a clock step back or a late writer is clamped to the
previous end time), because the spec requires newest-last ordering.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..db import enable_wal

#: Activity types this log emits (Change Discovery 1.0 §3.3 level 2, minus Move/Add/Remove/Refresh).
ACTIVITY_TYPES = ("Create", "Update", "Delete")
#: Object types accepted: the two the spec says activities SHOULD be about (§3.3 ``object``).
OBJECT_TYPES = frozenset({"Manifest", "Collection"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_SCHEMA_VERSION = 1
_SCHEMA = (
    # idx is the 0-based stream position (what a page's startIndex counts): assigned inside the
    # write transaction and never deleted, so it is gap-free.
    """CREATE TABLE IF NOT EXISTS activity (
        idx INTEGER PRIMARY KEY,
        type TEXT NOT NULL CHECK (type IN ('Create', 'Update', 'Delete')),
        object_path TEXT NOT NULL,
        object_type TEXT NOT NULL,
        end_time INTEGER NOT NULL
    )""",
    # The last recorded state of every path ever published; deleted rows are kept so that
    # a reappearance is recognised (and reported as a Create again).
    """CREATE TABLE IF NOT EXISTS state (
        object_path TEXT PRIMARY KEY,
        object_type TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
)


class TooManyDeletes(Exception):
    """``record`` would withdraw more of the published manifests at once than it was allowed to."""

    def __init__(self, deletes: int, published: int) -> None:
        super().__init__(f"{deletes} of the {published} published manifests would be deleted at once")
        self.deletes = deletes
        self.published = published


@dataclass(frozen=True, slots=True)
class Activity:
    """One entry of the stream: what happened to which object, and when."""

    index: int  # 0-based position in the stream, oldest first
    type: str  # "Create" | "Update" | "Delete"
    object_path: str  # relative to the public base URL, e.g. "iiif/manifests/KH-DT-0001"
    object_type: str  # "Manifest" | "Collection"
    end_time: datetime  # timezone-aware UTC, whole seconds


class ChangeLog:
    """Append-only activity log plus the last published state, in one SQLite file."""

    def __init__(self, path: Path, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            # Persistent in the file; a no-op once set. WAL lets page reads run during a record().
            enable_wal(conn, self.busy_timeout)
            with self._transaction(conn):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > _SCHEMA_VERSION:
                    raise RuntimeError(f"{self.path}: change log schema {version} is newer than this code")
                if version < _SCHEMA_VERSION:  # only then: opening a current file must not write to it
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def record(
        self, current: Mapping[str, tuple[str, str]], now: datetime | None = None, max_delete_share: float = 1.0
    ) -> list[Activity]:
        """Diff ``current`` (path -> (object type, content hash): everything published now) against the
        stored state, append the activities and store the new state; return what was appended.

        New paths, and paths deleted earlier that reappear, are a Create; a different hash (or type)
        is an Update; a published path missing from ``current`` is a Delete. Within one call every
        path occurs at most once, so order carries no meaning; activities are appended sorted by
        path, which makes the stream reproducible. All share one end time.

        Raises TooManyDeletes, appending nothing, if more than ``max_delete_share`` of the published
        Manifests would be deleted: harvesters act on Deletes, and a mass deletion is far more often
        a misconfiguration (an unmounted image root, an emptied export) than a museum's decision.
        """
        for path, (object_type, _) in current.items():
            _check(path, object_type)
        with closing(self._connect()) as conn, self._transaction(conn):
            stored = {
                path: (object_type, content_hash, bool(deleted))
                for path, object_type, content_hash, deleted in conn.execute(
                    "SELECT object_path, object_type, content_hash, deleted FROM state"
                )
            }
            changes: list[tuple[str, str, str]] = []  # (activity type, path, object type)
            for path in sorted(current.keys() | stored.keys()):
                old = stored.get(path)
                new = current.get(path)
                if new is None:
                    if old is not None and not old[2]:
                        changes.append(("Delete", path, old[0]))
                elif old is None or old[2]:
                    changes.append(("Create", path, new[0]))
                elif (old[0], old[1]) != new:
                    changes.append(("Update", path, new[0]))
            if not changes:
                return []
            deletes = sum(1 for kind, _, object_type in changes if kind == "Delete" and object_type == "Manifest")
            published = sum(
                1 for object_type, _, deleted in stored.values() if object_type == "Manifest" and not deleted
            )
            if deletes > max_delete_share * published:
                raise TooManyDeletes(deletes, published)
            appended = self._append(conn, changes, now)
            conn.executemany(
                "INSERT INTO state (object_path, object_type, content_hash, deleted) VALUES (?, ?, ?, 0)"
                " ON CONFLICT (object_path) DO UPDATE SET"
                " object_type = excluded.object_type, content_hash = excluded.content_hash, deleted = 0",
                [(path, *current[path]) for kind, path, _ in changes if kind != "Delete"],
            )
            conn.executemany(
                "UPDATE state SET deleted = 1 WHERE object_path = ?",
                [(path,) for kind, path, _ in changes if kind == "Delete"],
            )
            return appended

    def touch(self, object_path: str, object_type: str, now: datetime | None = None) -> Activity | None:
        """Append an Update for a published object whose content hash does not capture the change
        (e.g. its image master was replaced); None if the path is not currently published.

        Raises ValueError if the path is published as a different object type: the stream would
        otherwise describe one URI as two kinds of resource.
        """
        _check(object_path, object_type)
        with closing(self._connect()) as conn, self._transaction(conn):
            row = conn.execute(
                "SELECT object_type FROM state WHERE object_path = ? AND deleted = 0", (object_path,)
            ).fetchone()
            if row is None:
                return None
            if row[0] != object_type:
                raise ValueError(f"{object_path} is published as a {row[0]}, not a {object_type}")
            return self._append(conn, [("Update", object_path, object_type)], now)[0]

    def count(self) -> int:
        """Number of activities in the stream (its ``totalItems``)."""
        with closing(self._connect()) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM activity").fetchone()[0])

    def activities(self, start: int, limit: int) -> list[Activity]:
        """Up to ``limit`` activities from stream position ``start`` on, oldest first."""
        if start < 0 or limit < 0:
            raise ValueError(f"start and limit must be non-negative, got {start}, {limit}")
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT idx, type, object_path, object_type, end_time FROM activity"
                " WHERE idx >= ? ORDER BY idx LIMIT ?",
                (start, limit),
            ).fetchall()
        return [_activity(*row) for row in rows]

    def last_changed(self) -> datetime | None:
        """End time of the newest activity (for Last-Modified), None while the stream is empty."""
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT end_time FROM activity ORDER BY idx DESC LIMIT 1").fetchone()
        return None if row is None else _from_seconds(row[0])

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions, ours are explicit. timeout = busy timeout.
        return sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
        """A write transaction that takes the write lock up front, so the read that decides what to
        write already holds it (no other writer can slip in between read and write)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _append(conn: sqlite3.Connection, changes: list[tuple[str, str, str]], now: datetime | None) -> list[Activity]:
        """Append ``changes`` at the end of the stream; must run inside a write transaction."""
        next_index, last_time = conn.execute("SELECT COALESCE(MAX(idx) + 1, 0), MAX(end_time) FROM activity").fetchone()
        # The clock is read under the write lock, so a writer that waited gets a later time.
        seconds = _to_seconds(datetime.now(UTC) if now is None else now)
        if last_time is not None:
            seconds = max(seconds, last_time)
        rows = [
            (next_index + offset, kind, path, object_type, seconds)
            for offset, (kind, path, object_type) in enumerate(changes)
        ]
        conn.executemany(
            "INSERT INTO activity (idx, type, object_path, object_type, end_time) VALUES (?, ?, ?, ?, ?)", rows
        )
        return [_activity(*row) for row in rows]


def _check(object_path: str, object_type: str) -> None:
    if object_type not in OBJECT_TYPES:
        raise ValueError(f"{object_path}: object type {object_type!r} is not one of {sorted(OBJECT_TYPES)}")
    if not object_path or object_path.startswith("/"):
        raise ValueError(f"object path {object_path!r} must be non-empty and relative to the public base")


def _to_seconds(moment: datetime) -> int:
    """Whole Unix seconds, rounded up (see the module docstring); exact, no float arithmetic."""
    if moment.tzinfo is None:
        raise ValueError("end times must be timezone-aware")
    seconds, rest = divmod(moment - _EPOCH, _SECOND)
    return int(seconds) + (1 if rest else 0)


def _from_seconds(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _activity(index: int, kind: str, object_path: str, object_type: str, end_time: int) -> Activity:
    return Activity(index, kind, object_path, object_type, _from_seconds(end_time))
