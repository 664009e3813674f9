"""The audit log of restricted access: who saw which image at full resolution, when, from where.

The museum must be able to answer "who looked at this treasure?", so every record reaches the
database, and recording costs the request nothing it would notice: ``Audit.record`` puts a tuple
on an in-memory queue (no I/O, no lock held while writing) and a writer thread of the same process
batches the queue into SQLite, one transaction per batch. Everything slow (redaction, truncation,
the write, pruning) happens on the writer thread.

Several gunicorn workers write the same file: it runs in WAL mode (readers, such as
``iiif-server access log``, never block writers) and each batch waits for the write lock
(busy timeout) instead of failing. A batch that still cannot be written is kept and retried; the
writer takes nothing more from the queue meanwhile, so the queue fills instead of memory.

The queue is bounded (``capacity``). When it is full, ``record`` waits up to ``block`` seconds for
room (the writer is behind: the disk is slow or the database locked); if there is still none, the
record is dropped, counted in ``iiif_audit_dropped_total`` and logged as an error. Dropping rather
than waiting longer keeps a stuck disk from stopping the image server; the metric and the log make
the loss visible, never silent. The queue is written at exit (``close``, registered with atexit).

Times are UNIX seconds (UTC). Request URLs are stored with credential-like query values
redacted, as in the access log. Rows older than ``days`` days are deleted hourly (0: kept forever).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..accesslog import redact
from ..db import enable_wal
from ..metrics import AUDIT_DROPPED, AUDIT_RECORDS

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.sqlite"  # in [access] state_dir (default: [manifests] state_dir)
_PRUNE_EVERY = 3600.0  # seconds between deletions of rows past the retention
_DROP_LOG_EVERY = 60.0  # seconds between error lines while records are being dropped
#: Longest stored value of each field: a hostile URL cannot fill the disk one row at a time.
_LIMITS = (256, 1024, 64, 4096)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        user TEXT NOT NULL,
        image TEXT NOT NULL,
        address TEXT NOT NULL,
        request TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_at ON audit (at)",
    "CREATE INDEX IF NOT EXISTS audit_user ON audit (user, at)",
    "CREATE INDEX IF NOT EXISTS audit_image ON audit (image, at)",
)

Row = tuple[float, str, str, str, str]
_STOP = object()


class Record(NamedTuple):
    at: float  # UNIX seconds
    user: str
    image: str
    address: str
    request: str


def audit_path(settings: Settings) -> Path:
    """The audit database: in ``[access] state_dir``, or beside the manifests' change history."""
    return settings.access.state_path(settings.manifests.state_dir) / AUDIT_FILE


class Audit:
    """One process's writer of the audit log; create one per process (the wiring keeps it)."""

    def __init__(
        self,
        path: Path,
        days: int = 0,
        capacity: int = 10_000,
        block: float = 0.05,
        batch: int = 1000,
        interval: float = 0.2,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.days = days
        self.capacity = capacity
        self.block = block
        self.batch = batch
        self.interval = interval
        self.busy_timeout = busy_timeout
        self.dropped = 0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()  # set by close: a failing write gives up instead of retrying
        self._last_drop_log = 0.0
        ref = weakref.ref(self)  # the hooks must not keep every Audit ever made alive
        atexit.register(_if_alive, ref, Audit.close)
        os.register_at_fork(after_in_child=lambda: _if_alive(ref, Audit._forked))

    def record(self, user: str, identifier: str, address: str, request: str, when: float | None = None) -> None:
        """Note one full-resolution access; returns at once (a queue put) unless the queue is full."""
        if self._thread is None:
            self._start()
        if self._queue.qsize() >= self.capacity and not self._wait_for_room():
            self._drop()
            return
        self._queue.put((time.time() if when is None else when, user, identifier, address, request))

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, then stop the writer (a later ``record`` starts it again)."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._closing.set()
            self._queue.put(_STOP)
            thread.join(timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._closing = threading.Event()
                self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
                self._thread.start()

    def _forked(self) -> None:
        """In a forked child the parent's writer does not exist, and its queue is the parent's."""
        self._queue = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = None

    def _wait_for_room(self) -> bool:
        deadline = time.monotonic() + self.block
        while time.monotonic() < deadline:
            time.sleep(0.001)
            if self._queue.qsize() < self.capacity:
                return True
        return False

    def _drop(self) -> None:
        self.dropped += 1
        AUDIT_DROPPED.inc()
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_EVERY or self._last_drop_log == 0.0:
            self._last_drop_log = now
            log.error(
                "audit log %s is not keeping up: %d record(s) dropped so far by this process "
                "(queue of %d full for %.2f s); see iiif_audit_dropped_total",
                self.path,
                self.dropped,
                self.capacity,
                self.block,
            )

    def _run(self) -> None:
        pending: list[Row] = []
        conn: sqlite3.Connection | None = None
        failing = stopping = False
        next_prune = 0.0
        while True:
            if not pending:  # while a batch is unwritten, the queue fills instead of memory
                if stopping and self._queue.empty():
                    if conn is not None:
                        conn.close()
                    return
                stopping = self._take(pending, wait=not stopping) or stopping
            try:
                if conn is None:
                    conn = self._connect()
                if self.days and time.monotonic() >= next_prune:
                    self._prune(conn)
                    next_prune = time.monotonic() + _PRUNE_EVERY
                if pending:
                    self._write(conn, pending)
                    AUDIT_RECORDS.inc(len(pending))
                    pending = []
                if failing:
                    log.info("audit log %s is written again", self.path)
                    failing = False
            except (sqlite3.Error, OSError) as err:
                if not failing:
                    log.error(
                        "audit log %s cannot be written (%s): %d record(s) kept, retrying", self.path, err, len(pending)
                    )
                    failing = True
                if conn is not None:
                    conn.close()
                    conn = None
                if stopping or self._closing.is_set():  # at exit: nowhere left to keep them
                    self._lost(len(pending) + self._discard())
                    return
                time.sleep(self.interval)

    def _take(self, pending: list[Row], wait: bool) -> bool:
        """Move up to a batch of rows from the queue into ``pending``; True if told to stop."""
        try:
            item = self._queue.get(timeout=self.interval) if wait else self._queue.get_nowait()
        except queue.Empty:
            return False
        while True:
            if item is _STOP:
                return True
            pending.append(_clean(item))  # type: ignore[arg-type]
            if len(pending) >= self.batch:
                return False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False

    def _discard(self) -> int:
        count = 0
        while True:
            try:
                if self._queue.get_nowait() is not _STOP:
                    count += 1
            except queue.Empty:
                return count

    def _lost(self, count: int) -> None:
        if count:
            self.dropped += count
            AUDIT_DROPPED.inc(count)
            log.error("audit log %s: %d record(s) lost at exit (the database could not be written)", self.path, count)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            if new:  # who saw what is personal data: only the server's user reads it
                os.chmod(self.path, 0o600)
            enable_wal(conn, self.busy_timeout)
            for statement in _SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _write(conn: sqlite3.Connection, rows: list[Row]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO audit (at, user, image, address, request) VALUES (?, ?, ?, ?, ?)", rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _prune(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM audit WHERE at < ?", (time.time() - self.days * 86400,))


def _if_alive(ref: weakref.ref[Audit], method: Callable[[Audit], object]) -> None:
    audit = ref()
    if audit is not None:
        method(audit)


def _clean(row: Row) -> Row:
    at, user, image, address, request = row
    u, i, a, r = (str(value)[:limit] for value, limit in zip((user, image, address, request), _LIMITS, strict=True))
    return float(at), u, i, a, redact(r)


def query(path: Path, since: float | None = None, user: str | None = None, image: str | None = None) -> list[Record]:
    """The records matching every filter given, oldest first (in each process's order at equal times).

    Opens the file read-only; a missing file is an empty log.
    """
    if not path.exists():
        return []
    clauses, params = [], []
    for clause, value in (("at >= ?", since), ("user = ?", user), ("image = ?", image)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)) as conn:
        rows = conn.execute(
            f"SELECT at, user, image, address, request FROM audit{where} ORDER BY at, id", params
        ).fetchall()
    return [Record(*row) for row in rows]
