"""Disk cache shared by every worker process on a host: bounded size, LRU eviction, atomic writes.

Layout: ``{root}/{group[:2]}/{group}/{sha1(name)}``, so purging one image is
removing one folder. Writes go to a temporary file in the same folder and are
renamed into place, so a reader never sees half a file, whichever process
wrote it. Reads refresh the file's mtime (at most once a minute) and eviction
removes the oldest files first: LRU without a shared index.

Eviction runs in a background thread of whichever worker has written another
tenth of the budget since it last looked, under an ``flock`` so only one
process evicts at a time. The budget can be exceeded by about that tenth in
between.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from ..files import write_atomic
from . import group_of

log = logging.getLogger(__name__)
_TOUCH_AFTER = 60.0  # seconds; refreshing mtime on every hit would be a write per read
_EPOCH = ".epoch"  # a dot-file: eviction and purge pass it by


class DiskCache:
    def __init__(self, root: Path, max_bytes: int, evict_in_background: bool = True) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.evict_in_background = evict_in_background
        self.root.mkdir(parents=True, exist_ok=True)
        self._written = 0
        self._lock = threading.Lock()
        self._evicting = False

    def _path(self, key: str) -> Path:
        group, _, name = key.partition(":")
        return self.root / group[:2] / group / hashlib.sha1(name.encode()).hexdigest()

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
                stamp = os.fstat(handle.fileno()).st_mtime
        except OSError:
            return None
        now = time.time()
        if now - stamp > _TOUCH_AFTER:
            with contextlib.suppress(OSError):
                os.utime(path, (now, now))
        return data

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 8:
            return
        try:
            write_atomic(self._path(key), value)
        except OSError as err:  # a full or read-only disk costs speed, never a response
            log.warning("disk cache write failed: %s", err)
            return
        self._note_written(len(value))

    def purge(self, identifier: str | None = None) -> int:
        if identifier is not None:
            group = group_of(identifier)
            return _remove_tree(self.root / group[:2] / group)
        count = 0
        for shard in self.root.iterdir():
            if shard.is_dir() and len(shard.name) == 2:
                count += _remove_tree(shard)
        return count

    # -- purge epochs: lets every worker's memory tier notice a purge ------------------

    def epoch(self) -> str:
        try:
            return str(os.stat(self.root / _EPOCH).st_mtime_ns)
        except OSError:
            return "0"

    def bump_epoch(self) -> None:
        marker = self.root / _EPOCH
        marker.touch()
        now = time.time_ns()
        os.utime(marker, ns=(now, now))

    # -- eviction ------------------------------------------------------------------------

    def _note_written(self, size: int) -> None:
        if not self.evict_in_background:
            return
        with self._lock:
            self._written += size
            if self._written < self.max_bytes // 10 or self._evicting:
                return
            self._written = 0
            self._evicting = True
        threading.Thread(target=self._evict_guarded, name="disk-cache-evict", daemon=True).start()

    def _evict_guarded(self) -> None:
        """Evict until no more than a tenth of the budget was written meanwhile: writes that arrive
        while a pass runs trigger none of their own, so without another pass the cache could stay
        over budget until the next write, however long that takes."""
        while True:
            try:
                self.evict()
            except Exception:  # eviction is housekeeping: never let it take a worker down
                log.exception("disk cache eviction failed")
            with self._lock:
                if self._written < self.max_bytes // 10:
                    self._evicting = False
                    return
                self._written = 0

    def evict(self) -> int:
        """Delete least recently used files until the cache is within 90 % of its budget."""
        with open(self.root / ".lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another process is evicting
            entries = []
            total = 0
            for folder, _, files in os.walk(self.root):
                for name in files:
                    if name.startswith("."):
                        continue
                    path = os.path.join(folder, name)
                    try:
                        info = os.stat(path)
                    except OSError:
                        continue
                    entries.append((info.st_mtime, info.st_size, path))
                    total += info.st_size
            removed = 0
            if total <= self.max_bytes:
                return 0
            entries.sort()
            target = self.max_bytes * 9 // 10
            for _, size, path in entries:
                if total <= target:
                    break
                try:
                    os.unlink(path)
                except OSError:
                    continue
                total -= size
                removed += 1
            return removed


def _remove_tree(path: Path) -> int:
    if not path.is_dir():
        return 0
    count = sum(len(files) for _, _, files in os.walk(path))
    shutil.rmtree(path, ignore_errors=True)
    return count
