"""Per-image access levels from the collection export, kept current without a restart.

Every record's access value applies to each of its images; an image under several records gets
the most restrictive (hidden > degraded > open); a value not configured in ``[access] levels``
(a typo, an empty cell) counts as hidden, so a mistake in the export never opens an image.

The map is keyed by the image's real path (``Located.path``), found once per export read:
a request reaches the file under any spelling (extension or not, NFC or NFD, a symlink) and
still meets its level. An image the export names but that is missing when it is read is
matched by name (NFC, extension dropped) until the export is read again.

Freshness: each worker stats the export at most every ``[access] check_interval`` seconds
(one ``os.stat``, compared with the last stamp: size, mtime, inode, as the catalogue's check);
a different stamp re-reads it at once, on the request that noticed (moved off the ASGI event loop
first: ``stale``). So a tightening takes effect within ``check_interval`` of the export being
replaced, in every worker. A file that
cannot be read (missing, mid-copy, invalid) keeps the last good map: an unmounted share never
opens what was restricted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import AccessSettings
from ..errors import ConfigError, IIIFError
from ..image.sources import ImageSource, Located
from ..presentation.catalogue import export_stamp
from ..presentation.exports import read_export
from ..presentation.records import ColumnMap, clean, split_images

log = logging.getLogger(__name__)

#: How restrictive each treatment is: the higher wins when records disagree.
RANK = {"open": 0, "degraded": 1, "hidden": 2}


@dataclass(frozen=True, slots=True)
class Levels:
    by_path: dict[str, str] = field(default_factory=dict)  # real path -> level name
    by_name: dict[str, str] = field(default_factory=dict)  # ``name_key`` of a missing image -> level name


class LevelMap:
    def __init__(
        self,
        settings: AccessSettings,
        export: Path,
        columns: ColumnMap,
        source: ImageSource,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.export = export
        self.columns = columns
        self.source = source
        self._clock = clock
        self._lock = threading.Lock()
        self._levels = Levels()
        self._stamp: tuple[int, int, int] | None = None
        self._due = 0.0  # monotonic time of the next stat of the export

    def level(self, source: Located) -> str:
        """The file's level name: what the export says, else ``default_level``. The hot path:
        a clock read and a dict lookup, plus a stat of the export when one is due."""
        now = self._clock()
        if now >= self._due:
            self._check(now)
        return self.lookup(self._levels, source)

    def snapshot(self) -> Callable[[Located], str]:
        """The export's levels as they are now (read again, whatever this map holds), as ``level``
        gives them: the catalogue reads them within its own build, so a manifest and the export it
        was built from agree."""
        levels = self.read()
        return lambda source: self.lookup(levels, source)

    def lookup(self, levels: Levels, source: Located) -> str:
        """The file's level name in ``levels``: what the export says, else ``default_level``."""
        name = levels.by_path.get(source.path)
        if name is None and levels.by_name:
            name = levels.by_name.get(self.name_key(source.identifier))
        return name or self.settings.default_level

    def stale(self) -> bool:
        """Would ``level`` read the export now (it changed since it was read, and a check is due)?"""
        if self._clock() < self._due:
            return False
        stamp = export_stamp(self.export)
        return stamp is not None and stamp != self._stamp

    def name_key(self, identifier: str) -> str:
        """An identifier as a missing image is matched: NFC, without an allowed extension."""
        identifier = unicodedata.normalize("NFC", identifier.strip("/ "))
        stem, ext = os.path.splitext(identifier)
        return stem if ext.lower() in self.source.extensions else identifier

    def _check(self, now: float) -> None:
        self._due = now + self.settings.check_interval
        stamp = export_stamp(self.export)
        if stamp == self._stamp or stamp is None:  # unchanged, or gone: keep what we have
            return
        with self._lock:
            if stamp != self._stamp:
                self._load(stamp)

    def _load(self, stamp: tuple[int, int, int]) -> None:
        try:
            levels = self.read()
        except ConfigError as error:
            log.error("access levels not re-read, the last ones stay: %s", error)
            self._stamp = stamp  # retried when the file changes again
            return
        if export_stamp(self.export) != stamp:  # written while we read: read again on the next request
            self._due = 0.0
            return
        self._levels, self._stamp = levels, stamp

    def read(self) -> Levels:
        """Every image the export names, with its most restrictive level."""
        treatments = self.settings.levels
        columns = self.columns
        levels = Levels()
        for _, raw in read_export(self.export).rows:
            cells = {clean(key): value for key, value in raw.items() if key is not None}
            name = clean(cells.get(columns.access)).lower()
            rank = RANK[treatments.get(name, "hidden")]
            for identifier in split_images(cells.get(columns.images)):
                try:
                    key, into = self.source.locate(identifier).path, levels.by_path
                except IIIFError:
                    key, into = self.name_key(identifier), levels.by_name
                known = into.get(key)
                if known is None or RANK[treatments.get(known, "hidden")] < rank:
                    into[key] = name
        return levels
