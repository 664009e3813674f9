"""Identifier -> file under the image root, refusing anything that leaves it.

Knows the filesystem only (no pyvips): a ``Located`` file carries the path and a
fingerprint (size, mtime, inode) that keys every cache and ETag downstream, so a
replaced master is never mistaken for the old one.

Identifiers are percent-decoded UTF-8 paths relative to the root. Names on disk
may be NFC or NFD (macOS copies, Windows shares): both forms are tried, then a
per-folder NFC comparison.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest, NotFound
from ..lru import LRU


@dataclass(frozen=True, slots=True)
class Located:
    identifier: str
    path: str
    fingerprint: str
    mtime: float
    size: int


class FileSource:
    """Serves files whose extension is allowed, found under ``root`` only."""

    def __init__(self, root: Path, extensions: tuple[str, ...], cache_size: int = 32768) -> None:
        self.root = os.path.realpath(root)
        self.extensions = tuple(e.lower() for e in extensions)
        self._paths: LRU[str, str] = LRU(cache_size)

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
        """``locate`` for an identifier resolved before: one ``stat``, no search; else None."""
        cached = self._paths.get(identifier)
        if cached is None:
            return None
        try:
            return _located(identifier, cached, os.stat(cached))
        except OSError:
            return None  # moved or gone: ``locate`` finds out and says so

    def _resolve(self, identifier: str) -> str:
        parts = identifier.split("/")
        for part in parts:
            if part in ("", ".", "..") or part.startswith(".") or "\\" in part or "\x00" in part:
                raise InvalidRequest(f"identifier {identifier!r} is not a valid image path", "identifier")
        for relative in _name_variants(parts, self.extensions):
            path = self._safe_file(os.path.join(self.root, relative))
            if path:
                return path
        matched = self._match_normalised(parts)
        if matched:
            path = self._safe_file(os.path.join(self.root, matched))
            if path:
                return path
        raise NotFound(f"no image {identifier!r}", "identifier")

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

    def _match_normalised(self, parts: list[str]) -> str | None:
        """Walk folder by folder, comparing NFC forms; only runs when the quick forms missed."""
        here = self.root
        found: list[str] = []
        for index, part in enumerate(parts):
            wanted = {unicodedata.normalize("NFC", part)}
            if index == len(parts) - 1:
                base = next(iter(wanted))
                wanted |= {base + ext for ext in self.extensions} | {base + ext.upper() for ext in self.extensions}
            try:
                names = os.listdir(here)
            except OSError:
                return None
            match = next((n for n in names if unicodedata.normalize("NFC", n) in wanted), None)
            if match is None:
                return None
            found.append(match)
            here = os.path.join(here, match)
        return os.path.join(*found)

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


def _name_variants(parts: list[str], extensions: tuple[str, ...]) -> list[str]:
    relative = "/".join(parts)
    forms = dict.fromkeys([relative, unicodedata.normalize("NFC", relative), unicodedata.normalize("NFD", relative)])
    variants = list(forms)
    for form in forms:
        variants += [form + ext for ext in extensions] + [form + ext.upper() for ext in extensions]
    return variants


def fingerprint(info: os.stat_result) -> str:
    """Size, mtime and inode: any replacement of a file changes at least one."""
    return f"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"


def _located(identifier: str, path: str, info: os.stat_result) -> Located:
    return Located(identifier, path, fingerprint(info), info.st_mtime, info.st_size)
