"""The pass-through readers: one open ``TiffTiles`` per JPEG-tiled file, and the stored tile for a plan.

A reader holds a descriptor and the file's TIFF structure (no pixels), so a tile on the grid
costs one ``pread``. Readers are pooled per file and fingerprint (a replaced master is a new
key); a file that cannot be passed through is remembered as such (``False``). No pyvips here:
the layout the request resolved (``Inspected``) says which level a plan reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lru import LRU
from .passthrough import TiffTiles, open_reader
from .plan import RenderPlan, stored_tile

if TYPE_CHECKING:
    from .inspector import Inspected


class ReaderPool:
    def __init__(self, size: int = 64) -> None:
        self._readers: LRU[tuple[str, str], TiffTiles | bool] = LRU(size)

    def passthrough(self, source: Inspected, plan: RenderPlan, *, opened_only: bool = False) -> bytes | None:
        """The stored JPEG tile that answers ``plan`` exactly, without decoding; None otherwise.

        ``opened_only``: only with a reader already open on a local file, so the work is one ``pread``
        (for the event loop; the first tile of a file opens its reader on a thread, and a master in
        an object store is read on a thread: one ranged GET of the tile's bytes).
        """
        found = source.found
        if not found.tiled:
            return None
        layout = found.layout
        where = stored_tile(plan, layout.tile_width, layout.tile_height)
        if where is None:
            return None
        key = (source.path, source.fingerprint)
        if opened_only:
            reader = self._readers.get(key)
        else:
            target = source.blob if source.blob is not None else source.path
            reader = self._readers.get_or_create(key, lambda: open_reader(target, source.fingerprint) or False)
        if not isinstance(reader, TiffTiles) or (opened_only and not reader.local):
            return None  # an object store's tile is a network read: never on the event loop
        level = reader.level_for_load(found.loads[plan.level])
        if level is None or not level.passthrough or (level.tile_width, level.tile_height) != plan.size:
            return None
        return reader.jpeg(level, *where)
