"""JPEG tile pass-through: stored tiles + JPEGTables (+ APP14) decode exactly like libvips' own decode.

Inputs are synthesised with pyvips. libvips cannot write big-endian TIFFs, so a tiny
byte-swapper below rewrites a little-endian file's structure (header, IFDs, tag arrays)
in place; the JPEG tile data is byte-oriented and stays as it is. The swapper and the
loop/corruption helpers walk the TIFF with their own small parser, independent of the
module under test, so a bug in one cannot hide a bug in the other.
"""

from __future__ import annotations

import functools
import os
import random
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iiif_server.image.passthrough import Level, PassthroughError, TiffTiles, is_full_tile, open_reader

TILE = 256
WIDTH, HEIGHT = 1300, 1100  # full tiles per level: 5×4, 2×2, 1×1, then none (162×137)


# ---------------------------------------------------------------- synthetic images


def photo(width: int, height: int, bands: int, seed: int = 1) -> pyvips.Image:
    """Photo-like content: smooth perlin structure plus gaussian grain, so tiles are never flat."""
    channels = [
        pyvips.Image.perlin(width, height, cell_size=c, uchar=True, seed=seed + i) for i, c in enumerate((96, 48, 160))
    ]
    image = channels[0].bandjoin(channels[1:bands]) if bands > 1 else channels[0]
    image = (image + pyvips.Image.gaussnoise(width, height, sigma=14, mean=0, seed=seed)).cast("uchar")
    return image.copy(interpretation="srgb" if bands == 3 else "b-w")


def save(image: pyvips.Image, path: Path, **options: object) -> Path:
    defaults: dict[str, object] = dict(
        tile=True, pyramid=True, compression="jpeg", Q=85, tile_width=TILE, tile_height=TILE
    )
    image.tiffsave(str(path), **(defaults | options))
    return path


# ---------------------------------------------------------------- an independent mini TIFF walker

_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_CODES = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}


@dataclass
class Entry:
    tag: int
    kind: int
    count: int
    start: int  # position of the 12/20-byte entry

    def value_pos(self, big: bool) -> int:
        return self.start + (12 if big else 8)


@dataclass
class Ifd:
    offset: int
    next_pos: int
    entries: list[Entry]
    main: bool  # in the main chain, not a SubIFD


def walk(data: bytes) -> tuple[str, bool, list[Ifd]]:
    """Byte order, BigTIFF flag and every IFD (main chain and SubIFDs) of a well-formed TIFF."""
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", data, 2)[0] == 43
    first = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
    ifds: list[Ifd] = []
    pending = [(first, True)]
    while pending:
        offset, main = pending.pop(0)
        count = struct.unpack_from(order + ("Q" if big else "H"), data, offset)[0]
        base, size = offset + (8 if big else 2), (20 if big else 12)
        entries = []
        for i in range(count):
            tag, kind, n = struct.unpack_from(order + ("HHQ" if big else "HHI"), data, base + i * size)
            entries.append(Entry(tag, kind, n, base + i * size))
        next_pos = base + count * size
        ifd = Ifd(offset, next_pos, entries, main)
        ifds.append(ifd)
        nxt = struct.unpack_from(order + ("Q" if big else "I"), data, next_pos)[0]
        if nxt and not any(i.offset == nxt for i in ifds):
            pending.append((nxt, main))
        for entry in entries:
            if entry.tag == 330:
                pos, _ = array_at(data, order, big, entry)
                subs = struct.unpack_from(f"{order}{entry.count}{_CODES[entry.kind]}", data, pos)
                pending.extend((sub, False) for sub in subs)
    return order, big, ifds


def array_at(data: bytes, order: str, big: bool, entry: Entry) -> tuple[int, int]:
    """Where an entry's value lives (inline or out of line) and its element size."""
    size = _SIZES[entry.kind]
    field = 8 if big else 4
    pos = entry.value_pos(big)
    if size * entry.count > field:
        pos = struct.unpack_from(order + ("Q" if big else "I"), data, pos)[0]
    return pos, size


def find(ifd: Ifd, tag: int) -> Entry:
    return next(e for e in ifd.entries if e.tag == tag)


def to_big_endian(data: bytes) -> bytes:
    """The same TIFF with every multi-byte structure field byte-swapped: a big-endian TIFF."""
    order, big, ifds = walk(data)
    assert order == "<"
    out = bytearray(data)
    done: set[int] = set()

    def swap(pos: int, size: int, count: int = 1) -> None:
        assert pos not in done, "structure shared between fields"
        done.add(pos)
        for k in range(count):
            a = pos + k * size
            out[a : a + size] = data[a : a + size][::-1]

    out[0:2] = b"MM"
    swap(2, 2)
    if big:
        swap(4, 2, 2)
    swap(8 if big else 4, 8 if big else 4)
    word = 8 if big else 4
    for ifd in ifds:
        swap(ifd.offset, 8 if big else 2)
        for entry in ifd.entries:
            swap(entry.start, 2, 2)
            swap(entry.start + 4, word)
            size = _SIZES[entry.kind]
            element = 4 if entry.kind in (5, 10) else size
            if size * entry.count > word:
                swap(entry.value_pos(big), word)
            if element > 1:
                pos, _ = array_at(data, order, big, entry)
                swap(pos, element, size * entry.count // element)
        swap(ifd.next_pos, word)
    return bytes(out)


def put(data: bytes, pos: int, code: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(code, out, pos, value)
    return bytes(out)


def jpeg_markers(stream: bytes) -> list[int]:
    """Every marker of a JPEG stream, walking segment lengths and skipping entropy-coded data."""
    markers, pos = [], 0
    while pos + 1 < len(stream):
        assert stream[pos] == 0xFF, f"no marker at {pos}"
        marker = stream[pos + 1]
        markers.append(marker)
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        pos += 2 + int.from_bytes(stream[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # entropy data runs to the next marker that is not a stuffed 0xFF00 or RSTn
            while not (stream[pos] == 0xFF and stream[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1
    return markers


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("passthrough")
    colour, grey = photo(WIDTH, HEIGHT, 3), photo(WIDTH, HEIGHT, 1, seed=7)
    made = {
        "rgb85": save(colour, root / "rgb85.tif"),
        "rgb85-subifd": save(colour, root / "rgb85s.tif", subifd=True),
        "rgb95": save(colour, root / "rgb95.tif", Q=95),
        "rgb95-subifd": save(colour, root / "rgb95s.tif", Q=95, subifd=True),
        "grey85": save(grey, root / "grey85.tif"),
        "grey95-subifd": save(grey, root / "grey95s.tif", Q=95, subifd=True),
        "rgb85-bigtiff": save(colour, root / "rgb85b.tif", bigtiff=True),
        "rgb95-bigtiff-subifd": save(colour, root / "rgb95bs.tif", Q=95, bigtiff=True, subifd=True),
    }
    for name in ("rgb85", "rgb95-subifd", "grey85", "rgb85-bigtiff", "rgb95-bigtiff-subifd"):
        path = root / f"{name}-be.tif"
        path.write_bytes(to_big_endian(made[name].read_bytes()))
        made[f"{name}-be"] = path
    return made


def libvips_levels(path: Path) -> list[dict[str, int]]:
    """libvips' own load options for every level of the file: main-chain pages or SubIFDs."""
    image = pyvips.Image.new_from_file(str(path))
    if "n-subifds" in image.get_fields() and image.get("n-subifds") > 0:
        return [{"page": 0}] + [{"subifd": i} for i in range(image.get("n-subifds"))]
    return [{"page": p} for p in range(image.get("n-pages"))]


def level_of(reader: TiffTiles, options: dict[str, int]) -> Level:
    level = reader.level(**options)
    assert level is not None, options
    return level


# ---------------------------------------------------------------- pixel identity


@pytest.mark.parametrize(
    ("name", "photometric", "big_endian", "bigtiff"),
    [
        ("rgb85", 6, False, False),
        ("rgb85-subifd", 6, False, False),
        ("rgb95", 2, False, False),
        ("rgb95-subifd", 2, False, False),
        ("grey85", 1, False, False),
        ("grey95-subifd", 1, False, False),
        ("rgb85-bigtiff", 6, False, True),
        ("rgb95-bigtiff-subifd", 2, False, True),
        ("rgb85-be", 6, True, False),
        ("rgb95-subifd-be", 2, True, False),
        ("grey85-be", 1, True, False),
        ("rgb85-bigtiff-be", 6, True, True),
        ("rgb95-bigtiff-subifd-be", 2, True, True),
    ],
)
def test_tiles_decode_identical_to_libvips(
    files: dict[str, Path], name: str, photometric: int, big_endian: bool, bigtiff: bool
) -> None:
    path = files[name]
    reader = open_reader(path, fingerprint="fp")
    assert reader is not None
    with reader:
        assert (reader.big_endian, reader.bigtiff, reader.fingerprint) == (big_endian, bigtiff, "fp")
        options = libvips_levels(path)
        assert len(options) == 4 and len(reader.levels) == 4
        checked = 0
        for option in options:
            level = level_of(reader, option)
            source = pyvips.Image.new_from_file(str(path), **option)
            assert (level.width, level.height, level.tile_width, level.tile_height) == (
                source.width,
                source.height,
                TILE,
                TILE,
            )
            assert level.passthrough and level.reason == "" and level.photometric == photometric
            assert level.has_jpeg_tables and level.compression == 7
            for row in range(level.tiles_down):
                for col in range(level.tiles_across):
                    stream = reader.jpeg(level, col, row)
                    if not is_full_tile(level, col, row):
                        assert stream is None  # padded edge tile: refused unless asked for
                        continue
                    assert stream is not None
                    decoded = pyvips.Image.new_from_buffer(stream, "")
                    expected = source.crop(col * TILE, row * TILE, TILE, TILE)
                    assert decoded.bands == expected.bands
                    assert (decoded - expected).abs().max() == 0, (option, col, row)
                    assert_well_formed(stream, rgb=photometric == 2)
                    checked += 1
        assert checked == 20 + 4 + 1


def assert_well_formed(stream: bytes, rgb: bool) -> None:
    assert stream.startswith(b"\xff\xd8") and stream.endswith(b"\xff\xd9")
    markers = jpeg_markers(stream)
    assert markers.count(0xD8) == 1 and markers.count(0xD9) == 1
    assert markers.index(0xDB) < markers.index(0xC0) < markers.index(0xDA)  # tables before frame before scan
    assert (b"\xff\xee\x00\x0eAdobe" in stream) == rgb
    assert (0xEE in markers) == rgb and (0xE0 in markers) != rgb  # APP14 for RGB, JFIF otherwise


def test_edge_tiles_on_request(files: dict[str, Path]) -> None:
    """allow_partial serves the padded stored tile, whose in-image part matches libvips."""
    path = files["rgb85"]
    reader = TiffTiles(path)
    level = level_of(reader, {"page": 0})
    col, row = level.tiles_across - 1, level.tiles_down - 1
    assert not level.is_full_tile(col, row)
    stream = reader.jpeg(level, col, row, allow_partial=True)
    assert stream is not None
    decoded = pyvips.Image.new_from_buffer(stream, "")
    assert (decoded.width, decoded.height) == (TILE, TILE)
    w, h = level.width - col * TILE, level.height - row * TILE
    expected = pyvips.Image.new_from_file(str(path)).crop(col * TILE, row * TILE, w, h)
    assert (decoded.crop(0, 0, w, h) - expected).abs().max() == 0
    reader.close()


def test_level_addressing(files: dict[str, Path]) -> None:
    pages = TiffTiles(files["rgb85"])
    subifds = TiffTiles(files["rgb85-subifd"])
    assert [(lv.page, lv.subifd) for lv in pages.levels] == [(0, None), (1, None), (2, None), (3, None)]
    assert [(lv.page, lv.subifd) for lv in subifds.levels] == [(0, None), (0, 0), (0, 1), (0, 2)]
    assert pages.level(page=2) is pages.levels[2] and pages.level(subifd=0) is None
    assert subifds.level(subifd=1) is subifds.levels[2] and subifds.level(page=1) is None
    assert subifds.level(page=0, subifd=-1) is subifds.levels[0]  # libvips: subifd=-1 is the page itself
    # The render pipeline's load-option tuples map directly.
    assert pages.level_for_load(()) is pages.levels[0]
    assert pages.level_for_load((("page", 3),)) is pages.levels[3]
    assert subifds.level_for_load((("subifd", 2),)) is subifds.levels[3]
    assert pages.level_for_load((("shrink", 2),)) is None
    assert pages.level_for_load((("page", 9),)) is None
    pages.close()
    subifds.close()


def test_bad_requests_return_none(files: dict[str, Path]) -> None:
    reader = TiffTiles(files["rgb85"])
    other = TiffTiles(files["rgb95"])
    level = level_of(reader, {"page": 0})
    assert reader.jpeg(level, 0, 0) is not None
    for col, row in ((-1, 0), (0, -1), (level.tiles_across, 0), (0, level.tiles_down), (10**9, 10**9)):
        assert reader.jpeg(level, col, row) is None
        assert reader.jpeg(level, col, row, allow_partial=True) is None
    assert reader.jpeg(level_of(other, {"page": 0}), 0, 0) is None  # a level of another reader
    other.close()
    reader.close()
    assert reader.jpeg(level, 0, 0) is None  # closed
    reader.close()  # idempotent


def test_concurrent_reads_and_close(files: dict[str, Path]) -> None:
    reader = TiffTiles(files["rgb95"])
    level = level_of(reader, {"page": 0})
    expected = reader.jpeg(level, 2, 1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(300):
                stream = reader.jpeg(level, 2, 1)
                assert stream is None or stream == expected
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    reader.close()
    for thread in threads:
        thread.join()
    assert not errors
    assert reader.jpeg(level, 2, 1) is None


def self_contained_tiff(image: pyvips.Image, tile: int) -> bytes:
    """A one-page tiled TIFF whose tiles are complete JPEG files and which has no JPEGTables.

    Not something libvips writes, but valid TIFF that other writers produce: the stored
    streams already carry their tables, so they are served as they are.
    """
    across, down = -(-image.width // tile), -(-image.height // tile)
    padded = image.embed(0, 0, across * tile, down * tile, extend="copy")
    streams = [
        padded.crop(c * tile, r * tile, tile, tile).jpegsave_buffer(Q=85) for r in range(down) for c in range(across)
    ]
    offsets, pos = [], 8
    for stream in streams:
        offsets.append(pos)
        pos += len(stream)
    n = len(streams)
    bits_at, offsets_at, counts_at = pos, pos + 6, pos + 6 + 4 * n
    ifd_at = counts_at + 4 * n
    entries = [
        (256, 4, 1, image.width),
        (257, 4, 1, image.height),
        (258, 3, 3, bits_at),
        (259, 3, 1, 7),
        (262, 3, 1, 6),
        (277, 3, 1, 3),
        (284, 3, 1, 1),
        (322, 3, 1, tile),
        (323, 3, 1, tile),
        (324, 4, n, offsets_at),
        (325, 4, n, counts_at),
    ]
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at))
    out += b"".join(streams) + struct.pack("<3H", 8, 8, 8)
    out += struct.pack(f"<{n}I", *offsets) + struct.pack(f"<{n}I", *(len(s) for s in streams))
    out += struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        field = struct.pack("<H", value) + b"\x00\x00" if kind == 3 and count == 1 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + field
    return bytes(out + struct.pack("<I", 0))


def test_self_contained_tiles_without_jpeg_tables(tmp_path: Path) -> None:
    path = tmp_path / "self-contained.tif"
    path.write_bytes(self_contained_tiff(photo(600, 300, 3), TILE))
    reader = open_reader(path)
    assert reader is not None
    level = level_of(reader, {"page": 0})
    assert level.passthrough and not level.has_jpeg_tables
    source = pyvips.Image.new_from_file(str(path))
    for col in range(2):
        stream = reader.jpeg(level, col, 0)
        assert stream is not None
        expected = source.crop(col * TILE, 0, TILE, TILE)
        assert (pyvips.Image.new_from_buffer(stream, "") - expected).abs().max() == 0
    reader.close()


def test_tiles_needing_missing_tables(files: dict[str, Path], tmp_path: Path) -> None:
    """Tables-less tile streams cannot be served if the JPEGTables tag is gone (renamed to a private tag)."""
    data = files["rgb85"].read_bytes()
    _, _, ifds = walk(data)
    path = tmp_path / "no-tables.tif"
    path.write_bytes(put(data, find(ifds[0], 347).start, "<H", 65000))
    with TiffTiles(path) as reader:
        level = level_of(reader, {"page": 0})
        assert level.passthrough and not level.has_jpeg_tables
        assert reader.jpeg(level, 1, 1) is None
        assert reader.jpeg(level_of(reader, {"page": 1}), 0, 0) is not None  # other pages keep theirs


# ---------------------------------------------------------------- not possible: None, never an exception


def test_other_formats_are_not_possible(tmp_path: Path) -> None:
    image = photo(600, 500, 3)
    cases = {
        "deflate.tif": lambda p: save(image, p, compression="deflate"),
        "strips.tif": lambda p: image.tiffsave(str(p), compression="jpeg"),
        "photo.jpg": lambda p: image.jpegsave(str(p)),
        "photo.png": lambda p: image.pngsave(str(p)),
        "garbage.tif": lambda p: p.write_bytes(random.Random(1).randbytes(5000)),
        "empty.tif": lambda p: p.write_bytes(b""),
        "header-only.tif": lambda p: p.write_bytes(b"II*\x00"),
    }
    for name, make in cases.items():
        path = tmp_path / name
        make(path)
        assert open_reader(path) is None, name
    assert open_reader(tmp_path / "missing.tif") is None
    assert open_reader(tmp_path) is None  # a directory
    os.mkfifo(tmp_path / "fifo.tif")
    assert open_reader(tmp_path / "fifo.tif") is None  # not opened for a blocking read


def test_non_jpeg_levels_explain_why(tmp_path: Path) -> None:
    path = save(photo(600, 500, 3), tmp_path / "deflate.tif", compression="deflate")
    with TiffTiles(path) as reader:
        assert not reader.passthrough
        level = level_of(reader, {"page": 0})
        assert not level.passthrough and "compression 8" in level.reason
        assert reader.jpeg(level, 0, 0) is None
    strips = tmp_path / "strips.tif"
    photo(600, 500, 3).tiffsave(str(strips), compression="jpeg")
    with TiffTiles(strips) as reader:
        assert reader.levels[0].reason == "not tiled"


def test_truncated_files(files: dict[str, Path], tmp_path: Path) -> None:
    data = files["rgb85"].read_bytes()
    for cut in (8, 100, len(data) // 3, len(data) // 2, len(data) - 1000, len(data) - 1):
        path = tmp_path / f"cut{cut}.tif"
        path.write_bytes(data[:cut])
        assert open_reader(path) is None, cut


@pytest.mark.parametrize("name", ["rgb85", "rgb85-subifd", "rgb85-bigtiff", "rgb85-be"])
def test_ifd_loops(files: dict[str, Path], tmp_path: Path, name: str) -> None:
    data = files[name].read_bytes()
    order, big, ifds = walk(data)
    code = order + ("Q" if big else "I")
    loops = {
        "last-to-first": put(data, [i for i in ifds if i.main][-1].next_pos, code, ifds[0].offset),
        "last-to-middle": put(data, [i for i in ifds if i.main][-1].next_pos, code, ifds[len(ifds) // 2].offset),
        "self": put(data, ifds[0].next_pos, code, ifds[0].offset),
    }
    subifd = [e for e in ifds[0].entries if e.tag == 330]
    if subifd:
        pos, size = array_at(data, order, big, subifd[0])
        loops["subifd-to-page"] = put(data, pos + size, order + _CODES[subifd[0].kind], ifds[0].offset)
    for label, looped in loops.items():
        path = tmp_path / f"{label}.tif"
        path.write_bytes(looped)
        assert open_reader(path) is None, label


def test_hostile_tile_arrays(files: dict[str, Path], tmp_path: Path) -> None:
    data = files["rgb85"].read_bytes()
    order, big, ifds = walk(data)
    offsets, counts = find(ifds[0], 324), find(ifds[0], 325)
    offsets_pos, size = array_at(data, order, big, offsets)
    counts_pos, _ = array_at(data, order, big, counts)
    code = order + ("Q" if size == 8 else "I")
    variants = {
        "offset-past-eof": put(data, offsets_pos, code, len(data) - 10),
        "count-past-eof": put(data, counts_pos, code, len(data)),
        "huge-array": put(data, offsets.start + 4, order + "I", 1 << 30),
        "array-pointer-past-eof": put(data, offsets.value_pos(big), order + "I", len(data) + 4),
        "wrong-type": put(data, offsets.start + 2, order + "H", 5),
        "unknown-type": put(data, find(ifds[0], 256).start + 2, order + "H", 99),
        "no-entries": put(data, ifds[0].offset, order + "H", 0),
    }
    for label, bad in variants.items():
        path = tmp_path / f"{label}.tif"
        path.write_bytes(bad)
        assert open_reader(path) is None, label
        with pytest.raises(PassthroughError):
            TiffTiles(path)
    # A sparse (zero-length) tile is just that tile not being servable.
    path = tmp_path / "sparse.tif"
    across = -(-WIDTH // TILE)
    path.write_bytes(put(data, counts_pos + size * (across + 1), code, 0))
    reader = open_reader(path)
    assert reader is not None
    level = level_of(reader, {"page": 0})
    assert reader.jpeg(level, 1, 1) is None and reader.jpeg(level, 2, 1) is not None
    reader.close()


# ---------------------------------------------------------------- fuzzing


@functools.cache
def fuzz_bases() -> tuple[bytes, ...]:
    """Small pyramids (64-px tiles, a few hundred bytes each) so mutations often hit the structure."""
    image = photo(150, 110, 3)
    bases = []
    for options in ({}, {"subifd": True}, {"bigtiff": True}, {"Q": 95}):
        bases.append(
            image.tiffsave_buffer(tile=True, pyramid=True, compression="jpeg", tile_width=64, tile_height=64, **options)
        )
    bases.append(to_big_endian(bases[0]))
    bases.append(to_big_endian(bases[2]))
    return tuple(bases)


def structure_positions(data: bytes) -> list[int]:
    """Byte positions of the header, IFDs and tag arrays: where a mutation changes the structure."""
    order, big, ifds = walk(data)
    positions = list(range(16))
    for ifd in ifds:
        positions.extend(range(ifd.offset, ifd.next_pos + 8))
        for entry in ifd.entries:
            pos, size = array_at(data, order, big, entry)
            positions.extend(range(pos, pos + min(size * entry.count, 64)))
    return positions


@pytest.fixture(scope="module")
def fuzz_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "input.tif"


def exercise(path: Path) -> None:
    """Open and read every tile: anything but None or a JPEG-looking stream is a failure."""
    reader = open_reader(path)
    if reader is None:
        return
    with reader:
        for level in reader.levels:
            for row in range(min(level.tiles_down, 8)):
                for col in range(min(level.tiles_across, 8)):
                    stream = reader.jpeg(level, col, row, allow_partial=True)
                    assert stream is None or (stream[:2] == b"\xff\xd8" and stream[-2:] == b"\xff\xd9")


@settings(max_examples=250, deadline=1000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_mutated_tiffs(fuzz_path: Path, data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(fuzz_bases()))
    hot = structure_positions(base)
    mutated = bytearray(base)
    position = st.one_of(st.sampled_from(hot), st.integers(0, len(base) - 1))
    for pos, value in data.draw(st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=12)):
        mutated[pos] = value
    if data.draw(st.booleans()):
        del mutated[data.draw(st.integers(0, len(mutated))) :]
    fuzz_path.write_bytes(bytes(mutated))
    exercise(fuzz_path)


@settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.sampled_from([b"II*\x00", b"MM\x00*", b"II+\x00\x08\x00\x00\x00", b"MM\x00+\x00\x08\x00\x00", b""]),
    body=st.binary(max_size=2000),
)
def test_fuzz_random_bytes(fuzz_path: Path, header: bytes, body: bytes) -> None:
    fuzz_path.write_bytes(header + body)
    exercise(fuzz_path)
