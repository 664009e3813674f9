"""Folder listings by NFC name, kept while the folder is unchanged, so a miss costs a ``stat``.

An identifier may name a file whose name on disk is in another Unicode normal form (macOS copies,
Windows shares), so finding it, or knowing it is not there, takes the folder's names. Listing
and normalising a folder of 100 000 files took 60 ms per request for a missing image (issue 11);
kept, a lookup is one ``stat`` of the folder and a dict lookup.

A listing is believed while the folder's device, inode and ``st_mtime_ns`` are unchanged, and
fully only if the folder had not changed for ``SETTLE_NS`` when it was listed: timestamps are
coarse (the kernel's tick on ext4, 2 s on FAT, the server's clock on NFS), so a name added just
after the listing may leave the mtime as it was. A listing of a recently changed folder is
"unsettled": its names are used, and the exact forms are checked on disk as well, until the
folder settles and is listed again. Memory is bounded: an LRU of listings weighted by their
names; a folder with more names than ``max_names`` is not kept ("too big") and its names are
matched in their exact, NFC or NFD form only (a ``stat`` each).
"""

from __future__ import annotations

import os
import stat
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from ..lru import LRU

#: How long a folder must have been unchanged for its listing to be complete for sure.
SETTLE_NS = 1_000_000_000


class Stamp(NamedTuple):
    """What identifies a folder's state: any name added, removed or renamed changes it."""

    path: str
    device: int
    inode: int
    mtime_ns: int

    def current(self) -> bool:
        """Is the folder at ``path`` still in this state? (one ``stat``)"""
        return stamp(self.path) == self


def stamp(path: str) -> Stamp | None:
    """The folder's stamp, or None if ``path`` is not a folder (missing, a file, unreadable)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return Stamp(path, info.st_dev, info.st_ino, info.st_mtime_ns) if stat.S_ISDIR(info.st_mode) else None


@dataclass(frozen=True, slots=True)
class Listing:
    """A folder's names by NFC form, as of ``stamp``; ``names`` is None when the folder is too big."""

    stamp: Stamp
    settled: bool
    names: dict[str, str] | None  # NFC form -> the name on disk
    clashes: dict[str, tuple[str, ...]]  # NFC forms more than one name on disk has

    @property
    def size(self) -> int:
        """Its weight in the LRU: its names (at most ``max_names``), at least 1."""
        return max(1, len(self.names) if self.names is not None else 0)

    def find(self, base: str, suffixes: tuple[str, ...] = ("",)) -> list[str]:
        """Names in the folder that may be ``base`` + a suffix (an extension), best first: for each
        suffix in turn, the exact, NFC and NFD forms, then other names of the same NFC form.
        Not checked for type or safety."""
        found: list[str] = []
        sure = self.names is not None and self.settled
        nfc, nfd = unicodedata.normalize("NFC", base), unicodedata.normalize("NFD", base)
        for suffix in suffixes:
            key = nfc + suffix if suffix.isascii() else unicodedata.normalize("NFC", base + suffix)
            if sure and key not in self.names:  # type: ignore[operator]
                continue  # the common miss: one dict lookup
            forms = list(dict.fromkeys((base + suffix, key, unicodedata.normalize("NFD", nfd + suffix))))
            if not sure:  # the listing may lack it: look on disk
                found += [form for form in forms if os.path.lexists(os.path.join(self.stamp.path, form))]
            if self.names is not None and key in self.names:
                same = self.clashes.get(key) or (self.names[key],)
                found += [form for form in forms if form in same] + sorted(set(same) - set(forms))
        return list(dict.fromkeys(found))


class Folders:
    """Listings of the folders requests walk through, per process."""

    def __init__(self, max_names: int) -> None:
        self.max_names = max_names
        self._listings: LRU[str, Listing] = LRU(max_names, weigh=lambda listing: listing.size)
        self._listing_lock = threading.Lock()  # one listing at a time: threads missing together wait for it

    def listing(self, path: str, kept_only: bool = False) -> Listing | None:
        """The folder's names, kept or listed now (``kept_only``: never listed now); None if ``path``
        is not a folder, or has no usable kept listing and ``kept_only``."""
        now = stamp(path)
        if now is None:
            self._listings.pop(path)
            return None
        kept = self._usable(path, now)
        if kept is not None or kept_only:
            return kept
        with self._listing_lock:
            kept = self._usable(path, now)  # listed by the thread this one waited for?
            if kept is None:
                kept = _list(now, self.max_names)
                self._listings.put(path, kept)
        return kept

    def _usable(self, path: str, now: Stamp) -> Listing | None:
        kept = self._listings.get(path)
        if kept is not None and kept.stamp == now and (kept.settled or not _settled(now)):
            return kept
        return None


def _settled(folder: Stamp) -> bool:
    return time.time_ns() - folder.mtime_ns >= SETTLE_NS


def _list(folder: Stamp, max_names: int) -> Listing:
    """List the folder (stamped before listing: a change while listing shows next time)."""
    settled = _settled(folder)
    names: dict[str, str] = {}
    clashes: dict[str, list[str]] = {}
    try:
        with os.scandir(folder.path) as entries:
            for count, entry in enumerate(entries):
                if count >= max_names:
                    return Listing(folder, settled, None, {})
                name = entry.name
                nfc = unicodedata.normalize("NFC", name)  # the same object when already NFC
                other = names.setdefault(nfc, name)
                if other is not name:
                    clashes.setdefault(nfc, [other]).append(name)
    except OSError:
        return Listing(folder, False, None, {})  # unreadable now: exact forms, and list again next time
    return Listing(folder, settled, names, {nfc: tuple(sorted(found)) for nfc, found in clashes.items()})
