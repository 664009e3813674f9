"""Where ingest puts masters: files under the image root, or objects in the bucket.

``batch.process`` does the same for both (skip, refuse, convert, publish, record) through a
``Masters``: the current master's size, a staging file to convert into, ``publish`` (atomic: never
half a master under a real name; the replaced one kept under ``.versions/``), ``check`` for
``verify``, and its fixity ``Catalogue``. A ``Destination`` names one (picklable: a process pool's
or an RQ job's argument) and ``open`` makes it in the process that works; ``destinations.destination_of``
is the one place the settings choose.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .fixity import Catalogue, Entry, FixityCatalogue, catalogue_path, sha256_of, version_name

MISSING, ALTERED, RESIZED = "missing", "checksum mismatch", "size differs"


class NotWritable(ValueError):
    """Masters that ingest cannot write (a partner's read-only HTTP server): one-line reason."""


class NotUnderRoot(ValueError):
    """A folder given on the command line that is not under the image root (one-line reason)."""


class PublishError(Exception):
    """The master could not be put in place (the store refused, or reported other bytes)."""


class Taken(Exception):
    """Another ingest put a master at the identifier since it was checked (a conditional write lost)."""


@dataclass(frozen=True, slots=True)
class Published:
    sha256: str
    size: int
    previous_version: str | None  # where the master it replaced was kept; None for a first one


class Masters(Protocol):
    @property
    def catalogue(self) -> Catalogue: ...

    def size(self, identifier: str) -> int | None:
        """The current master's size; None if there is none."""
        ...

    def staging(self, identifier: str) -> AbstractContextManager[Path]:
        """A file to convert into, removed afterwards whatever happens."""
        ...

    def publish(self, identifier: str, staged: Path, replacing: bool) -> Published:
        """Put ``staged`` in place, keeping the current master (``replacing``) under ``.versions/``."""
        ...

    def check(self, entry: Entry) -> str | None:
        """``verify``'s problem with a recorded master (``MISSING``, ``ALTERED``, ``RESIZED``), or None."""
        ...


class Destination(Protocol):
    @property
    def name(self) -> str:
        """The image root or the bucket, for messages."""
        ...

    def folder(self, path: str) -> str:
        """A folder of masters named on the command line, checked (``NotUnderRoot``) and normalised."""
        ...

    def recorded(self) -> bool:
        """Has anything been ingested here (is there a fixity catalogue)?"""
        ...

    def open(self) -> Masters: ...


@dataclass(frozen=True, slots=True)
class ToFiles:
    """Masters under ``[images] root``, the fixity catalogue in SQLite beside them."""

    root: str

    @property
    def name(self) -> str:
        return self.root

    def folder(self, path: str) -> str:
        return under_root(Path(self.root), path)

    def recorded(self) -> bool:
        return catalogue_path(Path(self.root)).is_file()

    def open(self) -> Masters:
        return MasterFiles(Path(self.root))


def as_destination(where: Destination | str | Path) -> Destination:
    """A path is an image root (the library's and the tests' shorthand)."""
    return ToFiles(str(where)) if isinstance(where, str | Path) else where


class MasterFiles:
    """Masters as files: a hidden temporary file beside the target, synced, renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.catalogue = FixityCatalogue(root)

    def size(self, identifier: str) -> int | None:
        try:
            return (self.root / identifier).stat().st_size
        except FileNotFoundError:
            return None

    @contextmanager
    def staging(self, identifier: str) -> Iterator[Path]:
        target = self.root / identifier
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial.tif")
        try:
            yield partial
        finally:
            partial.unlink(missing_ok=True)

    def publish(self, identifier: str, staged: Path, replacing: bool) -> Published:
        """Synced and hashed, then renamed over the target: one step, the old master served until then."""
        target = self.root / identifier
        _fsync(staged)
        published = Published(sha256_of(staged), staged.stat().st_size, None)
        if target.exists():
            published = Published(published.sha256, published.size, self._keep_previous(identifier, target))
        os.replace(staged, target)
        _fsync(target.parent)
        return published

    def _keep_previous(self, identifier: str, target: Path) -> str:
        """A hard link to the current master in ``.versions/``; returns where, under the root.

        A link, not a move: the master stays served until the rename replaces it in one step.
        """
        kept = version_name(identifier)
        (self.root / kept).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(target, self.root / kept)
        except OSError:
            shutil.copy2(target, self.root / kept)
        return kept

    def check(self, entry: Entry) -> str | None:
        path = self.root / entry.identifier
        if not path.is_file():
            return MISSING
        return ALTERED if sha256_of(path) != entry.master_sha256 else None


def under_root(root: Path, path: str) -> str:
    """``path`` as the "/"-separated NFC folder under ``root`` it names ("" for the root itself).

    ``path`` is relative to the root, or absolute and inside it. Anything that leaves the root
    (``..``, another absolute path, a symbolic link pointing out) or names a hidden folder (never
    served) is refused: masters must land where the server finds them, and ``verify`` must check
    what was asked for, not the whole catalogue.
    """
    real_root = os.path.realpath(root)
    relative = os.path.relpath(os.path.realpath(os.path.join(real_root, path)), real_root)
    if relative == ".":
        return ""
    parts = relative.split(os.sep)
    if parts[0] == "..":
        raise NotUnderRoot(f"{path!r} is outside the image root {root}")
    return visible_folder(parts, path, "the image root")


def visible_folder(parts: list[str], path: str, where: str) -> str:
    """``parts`` joined (NFC) unless one is hidden: the server never serves a hidden folder."""
    if any(part.startswith(".") for part in parts):
        raise NotUnderRoot(f"{path!r} is a hidden folder under {where}, which the server never serves")
    return unicodedata.normalize("NFC", "/".join(parts))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
