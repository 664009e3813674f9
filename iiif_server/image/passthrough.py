"""Serve stored JPEG tiles of tiled pyramidal TIFFs without decoding them.

A JPEG-compressed tiled TIFF (Compression 7, as libvips ``tiffsave(tile=True,
pyramid=True, compression="jpeg")`` writes it) already holds every tile as a
baseline JPEG stream. Decoding that tile with libvips and encoding it again
costs ~1.4 ms; copying its bytes costs a few microseconds. Two things stop the
stored bytes from being a complete JPEG file on their own:

* **Shared tables.** libtiff writes the quantisation and Huffman tables once per
  page, in the JPEGTables tag (347), as an *abbreviated* stream
  ``SOI DQT… DHT… EOI``, and each tile as ``SOI SOF SOS <entropy data> EOI``
  without tables. The merge is ``SOI`` + ``<tables without their SOI/EOI>`` +
  ``<tile without its SOI>``: one stream, one SOI, one EOI, tables before the
  frame header, which is exactly what a decoder expects.
* **Colour space.** A 3-component JPEG without markers is taken to be YCbCr by
  decoders, which then convert it to RGB. libvips stores RGB samples directly
  (PhotometricInterpretation 2) at Q >= 90; serving those bytes bare would make
  browsers apply a YCbCr->RGB conversion to data that is already RGB (wrong
  colours). An Adobe APP14 marker with ``transform=0`` says "no transform".
  YCbCr (6) and grey (1) pages get a JFIF APP0 marker instead, which says YCbCr
  explicitly and makes the output a conforming JFIF file. Either way the result
  decodes pixel-identically to libvips' own decode of the tile.

Only the TIFF structure is read (header, IFDs, tag arrays), never pixel data,
when a reader is opened; tile bytes are read per request with ``os.pread`` on a
descriptor the reader keeps open (no shared file position, so threads can share
one reader). Pyramid levels are either further IFDs of the main chain (libvips
``page=N``) or SubIFDs (tag 330) of a page (libvips ``subifd=N``); both are
addressable, see :meth:`TiffTiles.level` and :meth:`TiffTiles.level_for_load`.

Any malformed or hostile structure (offsets past EOF, absurd counts, IFD loops,
unexpected types in the tags used) raises :class:`PassthroughError` from the
constructor; :func:`open_reader` turns that into ``None``, meaning "serve this
file the ordinary way". Every read is bounded and every walk is finite.
"""

from __future__ import annotations

import os
import stat
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sources import Blob

__all__ = ["Level", "PassthroughError", "TiffTiles", "is_full_tile", "open_reader"]


class PassthroughError(Exception):
    """The file is not a TIFF whose tiles can be passed through (or is malformed)."""


# Limits: real pyramids stay far below them; hostile files cannot make us read or allocate more.
MAX_IFDS = 4096  # main-chain pages + SubIFDs per file
MAX_ENTRIES = 4096  # tags per IFD (real files: < 100)
MAX_TILES = 1 << 22  # tiles per level: 4 M × 256² px ≈ 512 k × 512 k pixels
MAX_TILE_SIDE = 1 << 16  # JPEG frames cannot exceed 65 535 px anyway
MAX_TABLES = 1 << 16  # JPEGTables: a few hundred bytes in practice
MAX_TILE_BYTES = 1 << 28  # absolute cap on one compressed tile

# TIFF tags read.
_IMAGE_WIDTH = 256
_IMAGE_LENGTH = 257
_BITS_PER_SAMPLE = 258
_COMPRESSION = 259
_PHOTOMETRIC = 262
_SAMPLES_PER_PIXEL = 277
_PLANAR_CONFIG = 284
_TILE_WIDTH = 322
_TILE_LENGTH = 323
_TILE_OFFSETS = 324
_TILE_BYTE_COUNTS = 325
_SUBIFDS = 330
_JPEG_TABLES = 347
_YCBCR_SUBSAMPLING = 530
_WANTED = frozenset(
    (
        _IMAGE_WIDTH,
        _IMAGE_LENGTH,
        _BITS_PER_SAMPLE,
        _COMPRESSION,
        _PHOTOMETRIC,
        _SAMPLES_PER_PIXEL,
        _PLANAR_CONFIG,
        _TILE_WIDTH,
        _TILE_LENGTH,
        _TILE_OFFSETS,
        _TILE_BYTE_COUNTS,
        _SUBIFDS,
        _JPEG_TABLES,
        _YCBCR_SUBSAMPLING,
    )
)

# TIFF field types: size in bytes, and struct code for the unsigned integer types we accept.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_UINT_CODE = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}
_SCALAR_TYPES = frozenset((3, 4, 16))  # SHORT, LONG, LONG8
_SMALL_TYPES = frozenset((1, 3, 4))  # BYTE, SHORT, LONG: enumerations such as Compression
_ARRAY_TYPES = frozenset((3, 4, 16))
_IFD_TYPES = frozenset((4, 13, 16, 18))  # LONG, IFD, LONG8, IFD8
_BLOB_TYPES = frozenset((1, 7))  # BYTE, UNDEFINED

_COMPRESSION_JPEG = 7
_PHOTOMETRIC_GREY = 1  # MinIsBlack
_PHOTOMETRIC_RGB = 2
_PHOTOMETRIC_YCBCR = 6

# JPEG markers.
_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
_SOS = 0xDA
_DQT = 0xDB
# Segments allowed in an abbreviated table stream: DHT, DAC, DQT, DRI, APPn, COM.
_TABLE_MARKERS = frozenset((0xC4, 0xCC, 0xDB, 0xDD, 0xFE, *range(0xE0, 0xF0)))
# Adobe APP14: version 100, flags 0/0, transform 0 = samples are not YCbCr, do not convert.
_APP14_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
# JFIF APP0 1.01, no units, 1:1 pixel aspect, no thumbnail: declares YCbCr (or grey).
_APP0_JFIF = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"

_Entry = tuple[int, int, bytes]  # field type, count, the raw value/offset field


@dataclass(frozen=True, slots=True)
class Level:
    """One image of the file: a main-chain page (``subifd is None``) or a SubIFD of a page.

    ``passthrough`` says whether :meth:`TiffTiles.jpeg` can serve its tiles; when it
    cannot, ``reason`` says why (for logs). Dimensions are as stored in the IFD, so they
    equal what libvips reports for the same ``page``/``subifd``.
    """

    page: int
    subifd: int | None
    width: int
    height: int
    tile_width: int
    tile_height: int
    compression: int
    photometric: int | None
    samples_per_pixel: int
    bits_per_sample: tuple[int, ...]
    planar_config: int
    ycbcr_subsampling: tuple[int, int] | None
    has_jpeg_tables: bool
    passthrough: bool
    reason: str
    # Tile index -> (offset, byte count), kept as the raw packed arrays: 4–8 bytes a tile.
    _offsets: bytes = field(default=b"", repr=False, compare=False)
    _counts: bytes = field(default=b"", repr=False, compare=False)
    _offset_format: struct.Struct | None = field(default=None, repr=False, compare=False)
    _count_format: struct.Struct | None = field(default=None, repr=False, compare=False)
    # SOI + APP marker + JPEGTables body: everything that precedes the tile's own segments.
    _prefix: bytes = field(default=b"", repr=False, compare=False)
    _max_tile_bytes: int = field(default=0, repr=False, compare=False)

    @property
    def tiles_across(self) -> int:
        """Stored tile columns (the last one may be padded past the image edge)."""
        return -(-self.width // self.tile_width) if self.tile_width else 0

    @property
    def tiles_down(self) -> int:
        """Stored tile rows (the last one may be padded past the image edge)."""
        return -(-self.height // self.tile_height) if self.tile_height else 0

    def is_full_tile(self, col: int, row: int) -> bool:
        """True if tile (col, row) lies wholly inside the image: only those may be served as-is,
        because edge tiles are stored padded to full tile size."""
        return (
            self.tile_width > 0
            and self.tile_height > 0
            and col >= 0
            and row >= 0
            and (col + 1) * self.tile_width <= self.width
            and (row + 1) * self.tile_height <= self.height
        )


def is_full_tile(level: Level, col: int, row: int) -> bool:
    """True if tile (col, row) of ``level`` lies wholly inside the image (see :meth:`Level.is_full_tile`)."""
    return level.is_full_tile(col, row)


class _File:
    """A regular file opened read-only, with bounded positional reads that fail loudly when short."""

    def __init__(self, fd: int, size: int, blob: Blob | None = None) -> None:
        self.fd = fd
        self.blob = blob  # a master in an object store: read through its chunk cache
        self.size = size
        self.order = "<"
        self.big = False

    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset``, or PassthroughError: never past EOF, never unbounded."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise PassthroughError(f"read of {length} bytes at {offset} is outside the file ({self.size} bytes)")
        data = self.blob.read(offset, length) if self.blob is not None else os.pread(self.fd, length, offset)
        if len(data) != length:
            raise PassthroughError(f"short read at {offset}: file changed or truncated")
        return data


def _read_header(src: _File) -> int:
    """Byte order and classic/BigTIFF from the header; returns the first IFD offset."""
    head = src.read(0, 16) if src.size >= 16 else src.read(0, 8)
    if head[:2] == b"II":
        src.order = "<"
    elif head[:2] == b"MM":
        src.order = ">"
    else:
        raise PassthroughError("not a TIFF file")
    (version,) = struct.unpack_from(src.order + "H", head, 2)
    if version == 42:
        return int(struct.unpack_from(src.order + "I", head, 4)[0])
    if version == 43 and len(head) == 16:
        src.big = True
        offset_size, zero, first = struct.unpack_from(src.order + "HHQ", head, 4)
        if offset_size != 8 or zero != 0:
            raise PassthroughError("unsupported BigTIFF offset size")
        return int(first)
    raise PassthroughError("not a TIFF file")


def _read_ifd(src: _File, offset: int) -> tuple[dict[int, _Entry], int]:
    """The wanted entries of the IFD at ``offset`` and the next IFD's offset, in two reads.

    Tags we do not use are skipped without looking at their type, as the TIFF spec asks of
    readers; a repeated wanted tag is an inconsistency.
    """
    count_format, entry_size, value_size = ("Q", 20, 8) if src.big else ("H", 12, 4)
    count_size = struct.calcsize(count_format)
    (count,) = struct.unpack(src.order + count_format, src.read(offset, count_size))
    if count == 0 or count > MAX_ENTRIES:
        raise PassthroughError(f"IFD at {offset} has {count} entries")
    body = src.read(offset + count_size, count * entry_size + value_size)
    head = struct.Struct(src.order + ("HHQ" if src.big else "HHI"))
    entries: dict[int, _Entry] = {}
    for i in range(count):
        start = i * entry_size
        tag, kind, n = head.unpack_from(body, start)
        if tag not in _WANTED:
            continue
        if tag in entries:
            raise PassthroughError(f"tag {tag} repeated in IFD at {offset}")
        entries[tag] = (kind, n, body[start + entry_size - value_size : start + entry_size])
    (next_offset,) = struct.unpack_from(src.order + ("Q" if src.big else "I"), body, count * entry_size)
    return entries, int(next_offset)


def _value_bytes(src: _File, entry: _Entry, max_count: int) -> bytes:
    """The raw value of an entry: inline in the entry if it fits, else read from its offset."""
    kind, count, field_bytes = entry
    size = _TYPE_SIZE.get(kind)
    if size is None:
        raise PassthroughError(f"unknown TIFF field type {kind}")
    if count < 1 or count > max_count:
        raise PassthroughError(f"field count {count} out of range (max {max_count})")
    total = size * count
    if total <= len(field_bytes):
        return field_bytes[:total]
    (offset,) = struct.unpack(src.order + ("Q" if src.big else "I"), field_bytes)
    return src.read(int(offset), total)


def _uints(src: _File, entry: _Entry, allowed: frozenset[int], max_count: int) -> tuple[int, ...]:
    """An unsigned integer array of one of the ``allowed`` types, unpacked in one call."""
    kind, count, _ = entry
    if kind not in allowed:
        raise PassthroughError(f"unexpected TIFF field type {kind}")
    data = _value_bytes(src, entry, max_count)
    return struct.unpack(f"{src.order}{count}{_UINT_CODE[kind]}", data)


def _scalar(src: _File, entries: dict[int, _Entry], tag: int, default: int | None) -> int | None:
    """A single-valued integer tag, or ``default`` when absent."""
    entry = entries.get(tag)
    if entry is None:
        return default
    allowed = _SCALAR_TYPES if tag in (_IMAGE_WIDTH, _IMAGE_LENGTH, _TILE_WIDTH, _TILE_LENGTH) else _SMALL_TYPES
    return _uints(src, entry, allowed, 1)[0]


def _check_tables(tables: bytes) -> None:
    """JPEGTables must be ``SOI`` + table segments + ``EOI``; anything else is not merged into a response."""
    if len(tables) < 4 or tables[:2] != _SOI or tables[-2:] != _EOI:
        raise PassthroughError("JPEGTables is not an abbreviated JPEG stream")
    pos, end = 2, len(tables) - 2
    while pos < end:
        if pos + 4 > end or tables[pos] != 0xFF or tables[pos + 1] not in _TABLE_MARKERS:
            raise PassthroughError("JPEGTables holds something other than tables")
        length = (tables[pos + 2] << 8) | tables[pos + 3]
        if length < 2:
            raise PassthroughError("JPEGTables segment length is invalid")
        pos += 2 + length
    if pos != end:
        raise PassthroughError("JPEGTables segments overrun the stream")


def _has_quant_tables(stream: bytes) -> bool:
    """True if a tile stream carries its own DQT before SOS, so it decodes without JPEGTables."""
    pos = 2
    while pos + 4 <= len(stream) and stream[pos] == 0xFF:
        marker = stream[pos + 1]
        if marker == _DQT:
            return True
        if marker == _SOS:
            return False
        pos += 2 + ((stream[pos + 2] << 8) | stream[pos + 3])
    return False


def _why_not(level: Level) -> str:
    """Why a level cannot be passed through, or "" if it can (judged before its tile arrays are read)."""
    if not level.tile_width or not level.tile_height:
        return "not tiled"
    if level.compression != _COMPRESSION_JPEG:
        return f"compression {level.compression} is not new-style JPEG (7)"
    if not (0 < level.width < 1 << 32 and 0 < level.height < 1 << 32):
        return "empty image"
    if level.tile_width > MAX_TILE_SIDE or level.tile_height > MAX_TILE_SIDE:
        return "tiles too large for JPEG"
    if level.planar_config != 1:
        return f"planar configuration {level.planar_config}"
    if any(b != 8 for b in level.bits_per_sample):
        return f"bits per sample {level.bits_per_sample}"
    if level.samples_per_pixel == 1 and level.photometric == _PHOTOMETRIC_GREY:
        return ""
    if level.samples_per_pixel == 3 and level.photometric in (_PHOTOMETRIC_RGB, _PHOTOMETRIC_YCBCR):
        return ""
    return f"{level.samples_per_pixel} samples with photometric interpretation {level.photometric}"


def _tile_arrays(
    src: _File, entries: dict[int, _Entry], tiles: int
) -> tuple[bytes, bytes, struct.Struct, struct.Struct]:
    """TileOffsets and TileByteCounts as packed arrays, each read once and checked against EOF."""
    packed: list[bytes] = []
    formats: list[struct.Struct] = []
    values: list[tuple[int, ...]] = []
    for tag in (_TILE_OFFSETS, _TILE_BYTE_COUNTS):
        entry = entries.get(tag)
        if entry is None:
            raise PassthroughError(f"tag {tag} missing from a JPEG-tiled level")
        kind, count, _ = entry
        if kind not in _ARRAY_TYPES or count != tiles:
            raise PassthroughError(f"tag {tag} has type {kind} and {count} values for {tiles} tiles")
        data = _value_bytes(src, entry, MAX_TILES)
        code = src.order + _UINT_CODE[kind]
        values.append(struct.unpack(f"{src.order}{count}{_UINT_CODE[kind]}", data))
        packed.append(data)
        formats.append(struct.Struct(code))
    if max(map(sum, zip(*values, strict=True))) > src.size:
        raise PassthroughError("a tile lies past the end of the file")
    return packed[0], packed[1], formats[0], formats[1]


def _parse_level(src: _File, entries: dict[int, _Entry], page: int, subifd: int | None) -> Level:
    """Build a Level from an IFD's entries; reads tile arrays and tables only if pass-through is possible."""
    width = _scalar(src, entries, _IMAGE_WIDTH, 0) or 0
    height = _scalar(src, entries, _IMAGE_LENGTH, 0) or 0
    tile_w = _scalar(src, entries, _TILE_WIDTH, 0) or 0
    tile_h = _scalar(src, entries, _TILE_LENGTH, 0) or 0
    compression = _scalar(src, entries, _COMPRESSION, 1) or 0
    photometric = _scalar(src, entries, _PHOTOMETRIC, None)
    samples = _scalar(src, entries, _SAMPLES_PER_PIXEL, 1) or 0
    planar = _scalar(src, entries, _PLANAR_CONFIG, 1) or 0
    if not 1 <= samples <= 64:
        raise PassthroughError(f"{samples} samples per pixel")
    bits: tuple[int, ...] = (1,) * samples
    if _BITS_PER_SAMPLE in entries:
        bits = _uints(src, entries[_BITS_PER_SAMPLE], _SMALL_TYPES, samples)
        bits = bits * samples if len(bits) == 1 else bits
        if len(bits) != samples:
            raise PassthroughError("BitsPerSample count does not match SamplesPerPixel")
    subsampling: tuple[int, int] | None = None
    if _YCBCR_SUBSAMPLING in entries:
        pair = _uints(src, entries[_YCBCR_SUBSAMPLING], _SMALL_TYPES, 2)
        subsampling = (pair[0], pair[1]) if len(pair) == 2 else None
    tables = b""
    if _JPEG_TABLES in entries and compression == _COMPRESSION_JPEG:
        entry = entries[_JPEG_TABLES]
        if entry[0] not in _BLOB_TYPES:
            raise PassthroughError(f"JPEGTables has type {entry[0]}")
        tables = _value_bytes(src, entry, MAX_TABLES)
    level = Level(
        page=page,
        subifd=subifd,
        width=width,
        height=height,
        tile_width=tile_w,
        tile_height=tile_h,
        compression=compression,
        photometric=photometric,
        samples_per_pixel=samples,
        bits_per_sample=bits,
        planar_config=planar,
        ycbcr_subsampling=subsampling,
        has_jpeg_tables=bool(tables),
        passthrough=False,
        reason="",
    )
    reason = _why_not(level)
    if reason:
        return replace(level, reason=reason)
    tiles = level.tiles_across * level.tiles_down
    if tiles > MAX_TILES:
        raise PassthroughError(f"{tiles} tiles in one level")
    offsets, counts, offset_format, count_format = _tile_arrays(src, entries, tiles)
    if tables:
        _check_tables(tables)
    marker = _APP14_RGB if photometric == _PHOTOMETRIC_RGB else _APP0_JFIF
    return replace(
        level,
        passthrough=True,
        _offsets=offsets,
        _counts=counts,
        _offset_format=offset_format,
        _count_format=count_format,
        _prefix=_SOI + marker + tables[2:-2],
        _max_tile_bytes=min(MAX_TILE_BYTES, 4 * tile_w * tile_h * samples + (1 << 16)),
    )


def _walk(src: _File, first: int) -> list[Level]:
    """All main-chain pages and their SubIFDs, in file order; a revisited IFD is a loop and an error."""
    seen: set[int] = set()
    levels: list[Level] = []

    def visit(offset: int) -> tuple[dict[int, _Entry], int]:
        if offset in seen:
            raise PassthroughError(f"IFD at {offset} is reached twice: the chain loops")
        if len(seen) >= MAX_IFDS:
            raise PassthroughError(f"more than {MAX_IFDS} IFDs")
        seen.add(offset)
        return _read_ifd(src, offset)

    offset, page = first, 0
    while offset:
        entries, offset = visit(offset)
        levels.append(_parse_level(src, entries, page, None))
        if _SUBIFDS in entries:
            for index, sub in enumerate(_uints(src, entries[_SUBIFDS], _IFD_TYPES, MAX_IFDS)):
                levels.append(_parse_level(src, visit(sub)[0], page, index))
        page += 1
    if not levels:
        raise PassthroughError("the TIFF has no IFD")
    return levels


class TiffTiles:
    """The tile structure of one TIFF, kept with an open descriptor to serve JPEG tiles.

    Build once per file and cache it (e.g. keyed by path + fingerprint); safe to share
    between threads. The constructor raises only :class:`PassthroughError`.
    """

    def __init__(self, path: str | os.PathLike[str] | Blob, fingerprint: str = "") -> None:
        self._blob = None if isinstance(path, str | os.PathLike) else path
        self.path = os.fspath(path) if self._blob is None else str(getattr(path, "name", "<blob>"))  # type: ignore[arg-type]
        self.fingerprint = fingerprint
        self._lock = threading.Lock()
        self._users = 0
        self._closing = False
        self._fd = -1
        try:
            if self._blob is not None:
                src = _File(-1, self._blob.size, self._blob)
            else:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
                info = os.fstat(self._fd)
                if not stat.S_ISREG(info.st_mode):
                    raise PassthroughError("not a regular file")
                src = _File(self._fd, info.st_size)
            levels = _walk(src, _read_header(src))
        except (OSError, struct.error, ValueError, OverflowError) as error:
            self.close()
            raise PassthroughError(str(error)) from error
        except PassthroughError:
            self.close()
            raise
        self.size = src.size
        self.big_endian = src.order == ">"
        self.bigtiff = src.big
        self.levels: tuple[Level, ...] = tuple(levels)
        self._by_key = {(lv.page, lv.subifd): lv for lv in levels}

    @property
    def passthrough(self) -> bool:
        """True if at least one level can serve its tiles as stored JPEG."""
        return any(lv.passthrough for lv in self.levels)

    def level(self, page: int = 0, subifd: int | None = None) -> Level | None:
        """The level libvips opens with the same ``page``/``subifd`` load options, or None.

        ``level(page=N)`` is main-chain IFD N (N=0: full resolution); ``level(subifd=N)`` is
        SubIFD N of page 0; ``subifd=-1`` means the page itself, as in libvips.
        """
        return self._by_key.get((page, None if subifd == -1 else subifd))

    def level_for_load(self, load: Iterable[tuple[str, object]]) -> Level | None:
        """The level for a pyvips load-option list such as ``()``, ``(("page", 2),)`` or ``(("subifd", 1),)``.

        Any other option (``shrink``…) means the caller's level is not a stored IFD: None.
        """
        options = dict(load)
        page, subifd = options.pop("page", 0), options.pop("subifd", None)
        options.pop("fail", None)
        if options or not isinstance(page, int) or not (subifd is None or isinstance(subifd, int)):
            return None
        return self.level(page, subifd)

    def jpeg(self, level: Level, col: int, row: int, *, allow_partial: bool = False) -> bytes | None:
        """The complete JPEG stream of stored tile (col, row) of ``level``, or None if it cannot be served.

        Edge tiles are stored padded to full tile size, so they are refused unless
        ``allow_partial`` (the stream then decodes to the full, padded tile).
        """
        if self._by_key.get((level.page, level.subifd)) is not level or not level.passthrough:
            return None
        across = level.tiles_across
        if not (0 <= col < across and 0 <= row < level.tiles_down):
            return None
        if not allow_partial and not level.is_full_tile(col, row):
            return None
        assert level._offset_format is not None and level._count_format is not None
        index = row * across + col
        (offset,) = level._offset_format.unpack_from(level._offsets, index * level._offset_format.size)
        (count,) = level._count_format.unpack_from(level._counts, index * level._count_format.size)
        if count < 4 or count > level._max_tile_bytes:
            return None  # a missing (sparse) tile, or an absurd one
        data = self._pread(count, offset)
        if data is None or len(data) != count or data[:2] != _SOI or data[-2:] != _EOI:
            return None
        if not level.has_jpeg_tables and not _has_quant_tables(data):
            return None
        return level._prefix + memoryview(data)[2:]

    @property
    def local(self) -> bool:
        """A local file (a ``pread``), not an object store (a network request unless cached)."""
        return self._blob is None

    def _pread(self, length: int, offset: int) -> bytes | None:
        """pread on the kept descriptor; close() waits for in-flight reads, so a reused fd is never read.
        An object store's tile: exactly its bytes, one ranged GET unless its chunks are cached."""
        if self._blob is not None:
            return None if self._closing else self._blob.read_exact(offset, length)
        with self._lock:
            if self._fd < 0 or self._closing:
                return None
            self._users += 1
            fd = self._fd
        try:
            return os.pread(fd, length, offset)
        except OSError:
            return None
        finally:
            with self._lock:
                self._users -= 1
                if self._closing and self._users == 0:
                    self._release()

    def _release(self) -> None:
        """Close the descriptor (lock held, no reads in flight)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def close(self) -> None:
        """Release the descriptor; later jpeg() calls return None. Reads in flight finish first."""
        with self._lock:
            self._closing = True
            if self._users == 0:
                self._release()

    def __enter__(self) -> TiffTiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self.close()


def open_reader(path: str | os.PathLike[str] | Blob, fingerprint: str = "") -> TiffTiles | None:
    """A reader for ``path`` if at least one of its levels can be passed through, else None.

    None covers everything else: not a TIFF, not tiled, not JPEG, malformed, unreadable.
    """
    try:
        reader = TiffTiles(path, fingerprint)
    except PassthroughError:
        return None
    if not reader.passthrough:
        reader.close()
        return None
    return reader
