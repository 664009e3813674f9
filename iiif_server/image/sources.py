"""Identifier -> file under the image root, refusing anything that leaves it.

Knows the filesystem only (no pyvips): a ``Located`` file carries the path and a
fingerprint (size, mtime, inode) that keys every cache and ETag downstream, so a
replaced master is never mistaken for the old one.

Identifiers are percent-decoded UTF-8 paths relative to the root. Names on disk
may be NFC or NFD (macOS copies, Windows shares): each folder on the way is matched
by NFC form, through listings kept while the folder is unchanged (``folders.py``), so
a request for a missing image costs a ``stat`` per folder, not a listing. Misses are
remembered too, with the folders that showed them, until one of those changes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import InvalidRequest, NotFound
from ..lru import LRU
from .folders import Folders, Stamp


class Blob(Protocol):
    """A master that is not a local file (``ranged.RangedObject``, over S3 or HTTP): read by ranges, never whole."""

    @property
    def size(self) -> int: ...

    @property
    def chunk_size(self) -> int:
        """``read`` is cheapest for whole aligned chunks of this size."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``, through a chunk cache (libvips, TIFF structure)."""
        ...

    def read_exact(self, offset: int, length: int) -> bytes:
        """Exactly these bytes, in one request unless cached (a pass-through tile)."""
        ...


class ImageSource(Protocol):
    """Where masters are found: ``FileSource`` (under the image root), ``s3.S3Source`` (a bucket)
    or ``http_source.HttpSource`` (a partner's HTTP(S) server)."""

    extensions: tuple[str, ...]

    def locate(self, identifier: str) -> Located: ...

    def known(self, identifier: str) -> Located | None: ...

    def current(self, located: Located) -> bool: ...

    def list_identifiers(self, limit: int = 1000) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Located:
    identifier: str
    path: str  # a real path; for a ``blob``, a name (``s3://bucket/key``) that keys caches as a path does
    fingerprint: str
    mtime: float
    size: int
    blob: Blob | None = field(default=None, kw_only=True)  # None: a file, opened by ``path``


class FileSource:
    """Serves files whose extension is allowed, found under ``root`` only."""

    def __init__(
        self, root: Path, extensions: tuple[str, ...], cache_size: int = 32768, index_names: int = 200_000
    ) -> None:
        self.root = os.path.realpath(root)
        self.extensions = tuple(e.lower() for e in extensions)
        # What may follow a requested name on disk: nothing, or an extension in either case.
        self._suffixes = ("", *self.extensions, *(e.upper() for e in self.extensions))
        self._paths: LRU[str, str] = LRU(cache_size)
        self.folders = Folders(index_names)
        # Identifiers found missing -> the folders that showed it, valid while those are unchanged.
        self._misses: LRU[str, tuple[Stamp, ...]] = LRU(cache_size)

    def locate(self, identifier: str) -> Located:
        cached = self._paths.get(identifier)
        if cached is not None:
            try:
                return _located(identifier, cached, os.stat(cached))
            except OSError:
                self._paths.pop(identifier)
        path = self._resolve(identifier)
        self._paths.put(identifier, path)
        return _located(identifier, path, os.stat(path))

    def known(self, identifier: str) -> Located | None:
        """``locate`` for an identifier resolved before: one ``stat``, no search. ``NotFound`` when
        the kept listings of its folders show it missing (a ``stat`` each). Else None: look it up."""
        cached = self._paths.get(identifier)
        if cached is None:
            if self._known_miss(identifier) or self._missing_by_kept_listings(identifier):
                raise NotFound(f"no image {identifier!r}", "identifier")
            return None
        try:
            return _located(identifier, cached, os.stat(cached))
        except OSError:
            return None  # moved or gone: ``locate`` finds out and says so

    def current(self, located: Located) -> bool:
        """Is the file still the one ``located`` found? (one ``stat``)"""
        try:
            return fingerprint(os.stat(located.path)) == located.fingerprint
        except OSError:
            return False

    def _resolve(self, identifier: str) -> str:
        parts = identifier.split("/")
        if not _valid(parts):
            raise InvalidRequest(f"identifier {identifier!r} is not a valid image path", "identifier")
        if self._known_miss(identifier):
            raise NotFound(f"no image {identifier!r}", "identifier")
        path, proof = self._walk(parts)
        if path is not None:
            return path
        if proof:
            self._misses.put(identifier, proof)
        raise NotFound(f"no image {identifier!r}", "identifier")

    def _known_miss(self, identifier: str) -> bool:
        """Was ``identifier`` missing, and is every folder on its way unchanged since? (a ``stat`` each)"""
        stamps = self._misses.get(identifier)
        if stamps is None:
            return False
        if all(folder.current() for folder in stamps):
            return True
        self._misses.pop(identifier)
        return False

    def _missing_by_kept_listings(self, identifier: str) -> bool:
        """Do the kept, settled listings of its folders show ``identifier`` missing? (a ``stat`` each)"""
        parts = identifier.split("/")
        return _valid(parts) and bool(self._walk(parts, kept_only=True)[1])

    def _walk(self, parts: list[str], kept_only: bool = False) -> tuple[str | None, tuple[Stamp, ...]]:
        """The file, folder by folder through the kept listings (``folders.py``); else None and
        the stamps of the folders that prove it missing, empty when the miss is not to be remembered:
        a listing not settled, or a name there but refused (not a folder, not a safe file: that may
        depend on more than these folders, e.g. a symlink's target). ``kept_only``: list no folder,
        find no file; only a miss shown by kept listings is answered (else None, ())."""
        listing = self.folders.listing(self.root, kept_only)
        stamps: list[Stamp] = []
        settled = True
        for part in parts[:-1]:
            if listing is None:
                return None, ()
            stamps.append(listing.stamp)
            settled = settled and listing.settled
            names = listing.find(part)
            here = listing.stamp.path
            listing = next(filter(None, (self.folders.listing(os.path.join(here, n), kept_only) for n in names)), None)
            if listing is None:
                return None, (tuple(stamps) if settled and not names else ())
        if listing is None:
            return None, ()
        stamps.append(listing.stamp)
        names = listing.find(parts[-1], self._suffixes)
        if kept_only and names:
            return None, ()
        for name in names:
            path = self._safe_file(os.path.join(listing.stamp.path, name))
            if path:
                return path, ()
        return None, (tuple(stamps) if settled and listing.settled and not names else ())

    def _safe_file(self, candidate: str) -> str | None:
        """The real path if it is a regular file inside the root with an allowed extension."""
        if os.path.splitext(candidate)[1].lower() not in self.extensions:
            return None
        real = os.path.realpath(candidate)
        if not real.startswith(self.root + os.sep):
            return None
        try:
            info = os.stat(real)
        except OSError:
            return None
        return real if stat.S_ISREG(info.st_mode) else None

    def list_identifiers(self, limit: int = 1000) -> list[str]:
        """Images under the root, for the index page; hidden folders skipped."""
        found: list[str] = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in self.extensions:
                    found.append(os.path.relpath(os.path.join(folder, name), self.root).replace(os.sep, "/"))
                    if len(found) >= limit:
                        return found
        return found


def _valid(parts: list[str]) -> bool:
    """No empty, relative or hidden component, no backslash or NUL: nothing that could leave the root."""
    return not any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts)


def fingerprint(info: os.stat_result) -> str:
    """Size, mtime and inode: any replacement of a file changes at least one."""
    return f"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"


def _located(identifier: str, path: str, info: os.stat_result) -> Located:
    return Located(identifier, path, fingerprint(info), info.st_mtime, info.st_size)
