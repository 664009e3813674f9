"""libvips reading a master that is not a local file (``Located.blob``), by ranges.

The one seam between where a master lives and libvips: ``open_image`` is ``new_from_file`` for
files (nothing added on their path) and ``new_from_source`` over a ``pyvips.SourceCustom`` for a
blob, whose reads go through the blob's chunks (``ranged.RangedObject.read``), the last few kept in
memory for the stream: libtiff reads a tile's few KB at a time. The pass-through readers take the
blob itself (``passthrough.TiffTiles``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pyvips

from .sources import Blob, Located

log = logging.getLogger(__name__)
_KEPT_CHUNKS = 4  # per open image: libtiff moves between a level's tile offsets and its tiles


def open_image(source: Located, **options: Any) -> pyvips.Image:
    """The master as a libvips image: from its path, or from its blob by ranged reads."""
    if source.blob is None:
        return pyvips.Image.new_from_file(source.path, **options)
    return pyvips.Image.new_from_source(_Stream(source.blob).source, "", **options)


class _Stream:
    """A seekable read position over a blob, for libvips' custom source."""

    def __init__(self, blob: Blob) -> None:
        self.blob = blob
        self.position = 0
        self.chunks: dict[int, bytes] = {}
        self.source = pyvips.SourceCustom()
        self.source.signal_connect("read", self._read_into)
        self.source.on_seek(self.seek)

    def _read_into(self, buffer: Any) -> int:
        """libvips' read signal: bytes copied, 0 at the end, -1 when the store failed (a libvips
        error for this image, never an exception through C)."""
        try:
            data = self.read(len(buffer))
        except Exception as err:  # the store's errors are logged where they happen (s3.py)
            log.warning("reading %s at %d failed: %s", getattr(self.blob, "name", "?"), self.position, err)
            return -1
        buffer[: len(data)] = data
        return len(data)

    def read(self, length: int) -> bytes:
        size = self.blob.chunk_size
        index = self.position // size
        chunk = self.chunks.get(index)
        if chunk is None:
            chunk = self.blob.read(index * size, size)
            if len(self.chunks) >= _KEPT_CHUNKS:
                self.chunks.pop(next(iter(self.chunks)))
            self.chunks[index] = chunk
        start = self.position - index * size
        data = chunk[start : start + length]
        self.position += len(data)
        return data

    def seek(self, offset: int, whence: int) -> int:
        if whence == os.SEEK_SET:
            self.position = offset
        elif whence == os.SEEK_CUR:
            self.position += offset
        elif whence == os.SEEK_END:
            self.position = self.blob.size + offset
        else:
            return -1
        return self.position
