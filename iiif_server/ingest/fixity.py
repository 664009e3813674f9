"""The fixity catalogue: what every master was made from, its checksum, and every replacement.

SQLite in ``{image root}/.fixity/catalogue.sqlite``: beside the masters, so a backup of the root
carries its own proof, and hidden, so the image server never serves it. One connection per call
(safe across threads and processes; WAL, busy timeout); writes are single transactions.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from ..db import enable_wal

FIXITY_DIR = ".fixity"
VERSIONS_DIR = ".versions"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS masters (
    identifier TEXT PRIMARY KEY,      -- path of the master under the image root
    source_path TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    source_size INTEGER NOT NULL,
    master_sha256 TEXT NOT NULL,
    master_size INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    notes TEXT NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identifier TEXT NOT NULL,
    action TEXT NOT NULL,             -- ingest | replace
    at TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    master_sha256 TEXT NOT NULL,
    previous_master_sha256 TEXT,
    previous_version TEXT             -- where the replaced master was kept, under the root
);
"""


@dataclass(frozen=True, slots=True)
class Entry:
    identifier: str
    source_path: str
    source_sha256: str
    source_size: int
    master_sha256: str
    master_size: int
    width: int
    height: int
    notes: str
    ingested_at: str


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Streamed: a 2 GB scan is hashed in constant memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Catalogue(Protocol):
    """What ingest, verify and the reports need of a fixity catalogue: SQLite under the root
    (``FixityCatalogue``) or one object per record in the bucket (``bucket.BucketCatalogue``)."""

    def get(self, identifier: str) -> Entry | None: ...

    def entries(self, prefix: str = "") -> list[Entry]:
        """The masters at ``prefix`` or under the folder ``prefix``, by identifier."""
        ...

    def record(self, entry: Entry, previous: Entry | None = None, previous_version: str | None = None) -> None: ...

    def events(self, identifier: str) -> list[tuple[str, str, str | None]]:
        """(action, time, previous version) of one master, oldest first."""
        ...


def version_name(identifier: str) -> str:
    """Where a replaced master is kept, under the root or the bucket's prefix: hidden, never served."""
    stamp = now().replace(":", "").replace("-", "")
    return f"{VERSIONS_DIR}/{identifier[:-4]}.{stamp}.tif"


def event(entry: Entry, previous: Entry | None, previous_version: str | None) -> dict[str, str | None]:
    """The event that put ``entry`` in place: a row of ``events``, or one object in the bucket."""
    return {
        "identifier": entry.identifier,
        "action": "replace" if previous_version else "ingest",
        "at": entry.ingested_at,
        "source_sha256": entry.source_sha256,
        "master_sha256": entry.master_sha256,
        "previous_master_sha256": previous.master_sha256 if previous else None,
        "previous_version": previous_version,
    }


def catalogue_path(root: Path) -> Path:
    return root / FIXITY_DIR / "catalogue.sqlite"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FixityCatalogue:
    def __init__(self, root: Path) -> None:
        self.path = catalogue_path(root)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            enable_wal(db)
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            yield db

    def get(self, identifier: str) -> Entry | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM masters WHERE identifier = ?", (identifier,)).fetchone()
        return Entry(*row) if row else None

    def entries(self, prefix: str = "") -> list[Entry]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM masters WHERE identifier = ? OR identifier LIKE ? ESCAPE '\\' "
                "ORDER BY identifier",
                (prefix, _like_prefix(prefix)),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def record(self, entry: Entry, previous: Entry | None = None, previous_version: str | None = None) -> None:
        """The master now at ``entry.identifier``, and the event that put it there, in one transaction.

        ``previous_version``: where the master it replaced was kept (None for a first ingest).
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                f"INSERT OR REPLACE INTO masters ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.identifier,
                    entry.source_path,
                    entry.source_sha256,
                    entry.source_size,
                    entry.master_sha256,
                    entry.master_size,
                    entry.width,
                    entry.height,
                    entry.notes,
                    entry.ingested_at,
                ),
            )
            db.execute(
                "INSERT INTO events (identifier, action, at, source_sha256, master_sha256, "
                "previous_master_sha256, previous_version) VALUES (:identifier, :action, :at, :source_sha256, "
                ":master_sha256, :previous_master_sha256, :previous_version)",
                event(entry, previous, previous_version),
            )
            db.execute("COMMIT")

    def events(self, identifier: str) -> list[tuple[str, str, str | None]]:
        """(action, time, previous version) of one master, oldest first."""
        with self._connect() as db:
            return db.execute(
                "SELECT action, at, previous_version FROM events WHERE identifier = ? ORDER BY id", (identifier,)
            ).fetchall()


_COLUMNS = (
    "identifier, source_path, source_sha256, source_size, master_sha256, master_size, width, height, notes, ingested_at"
)


def _like_prefix(prefix: str) -> str:
    escaped = prefix.rstrip("/").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}/%" if escaped else "%"
