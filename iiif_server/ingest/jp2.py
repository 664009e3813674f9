"""JPEG 2000 scans as streamed pyvips images, for the ``pyvips-binary`` wheel (which has no JPEG 2000 loader).

OpenJPEG (Debian's ``libopenjp2-7``, through glymur's bindings) decodes horizontal strips of a few
million pixels; the strips are framed as an uncompressed ("stored") PNG and fed to libvips' PNG
loader through a ``SourceCustom``, so libvips pulls pixels as ``tiffsave`` needs them: no temporary
file, memory bounded by the strip, not the image. The ICC profile of the JP2 ``colr`` box rides in
the PNG's ``iCCP`` chunk, so ``convert`` honours it like any other profile.

Why not the alternatives (measured on a 20 000 × 15 000 scan, see docs/ingest.md): Debian's libvips
has a JPEG 2000 loader but drops the ICC profile and took 113 s; whole-image decoders from PyPI
(Pillow, imagecodecs) need ~5 GB; this path took 24–30 s in under 0.9 GB, pixel-identical to
Debian libvips' loader.

Untiled files (the common case) keep one OpenJPEG decoder across strips: OpenJPEG ≥ 2.3 keeps the
parsed codestream between ``set_decode_area``/``decode`` calls, so each strip costs only its pixels.
That uses glymur's low-level ``openjp2`` module; tiled files use glymur's public slicing.
"""

from __future__ import annotations

import ctypes
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyvips

from .jp2_suffixes import SUFFIXES

__all__ = ["SUFFIXES", "JP2Error", "colr_icc", "open_jp2"]
STRIP_PIXELS = 4_000_000  # decoded per step (~12 bytes each inside OpenJPEG for RGB)
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # bands -> PNG colour type: grey, grey+alpha, RGB, RGBA


class JP2Error(Exception):
    """The JPEG 2000 file cannot be read (or is a kind this loader refuses)."""


def open_jp2(path: Path) -> pyvips.Image:
    try:
        width, height, bands, bits, strips = _strips(path)
    except ImportError as err:
        raise JP2Error(f"JPEG 2000 needs glymur and OpenJPEG (apt-get install libopenjp2-7): {err}") from None
    except Exception as err:  # glymur's parser meets hostile files with many exception types
        raise JP2Error(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__) from None
    chunks = _png(width, height, bands, bits, strips, colr_icc(path))
    pending = bytearray()

    def on_read(size: int) -> bytes:
        while len(pending) < size:
            try:
                piece = next(chunks, None)
            except Exception as err:  # a decode error mid-file: libvips sees end of data and fails the load
                raise JP2Error(str(err)) from None
            if piece is None:
                break
            pending.extend(piece)
        out = bytes(pending[:size])
        del pending[:size]
        return out

    source = pyvips.SourceCustom()
    source.on_read(on_read)
    return pyvips.Image.new_from_source(source, "", access="sequential", fail_on="warning")


def colr_icc(path: Path) -> bytes | None:
    """The ICC profile of a JP2's ``colr`` box (methods 2 and 3), from the box headers alone."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        end = handle.tell()
        for kind, body, stop in _boxes(handle, 0, end):
            if kind == b"jp2c":
                return None
            if kind == b"jp2h":
                for sub, sub_body, sub_stop in _boxes(handle, body, stop):
                    if sub == b"colr":
                        handle.seek(sub_body)
                        method = handle.read(3)[0]
                        return handle.read(sub_stop - sub_body - 3) if method in (2, 3) else None
                return None
    return None


def _boxes(handle: Any, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    handle.seek(start)
    while handle.tell() < end:
        begin = handle.tell()
        head = handle.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        if size == 1:
            size = struct.unpack(">Q", handle.read(8))[0]
        elif size == 0:
            size = end - begin
        if size < 8:
            return
        yield kind, handle.tell(), begin + size
        handle.seek(begin + size)


def _strips(path: Path) -> tuple[int, int, int, int, Iterator[np.ndarray]]:
    import glymur

    jp2 = glymur.Jp2k(str(path))
    siz = jp2.codestream.segment[1]
    tiled = siz.xtsiz < siz.xsiz - siz.xosiz or siz.ytsiz < siz.ysiz - siz.yosiz
    if len(set(siz.bitdepth)) != 1 or any(siz.signed) or set(siz.xrsiz) | set(siz.yrsiz) != {1}:
        raise ValueError("JPEG 2000 with mixed, signed or subsampled components is not supported")
    width, height, bands, bits = siz.xsiz - siz.xosiz, siz.ysiz - siz.yosiz, len(siz.bitdepth), siz.bitdepth[0]
    if bits > 16 or bands not in _COLOUR_TYPE:
        raise ValueError(f"{bands}-component {bits}-bit JPEG 2000 is not supported")
    rows = max(64, STRIP_PIXELS // width)
    if tiled:
        rows = max(1, rows // siz.ytsiz) * siz.ytsiz  # whole rows of tiles

    def tile_rows() -> Iterator[np.ndarray]:  # a window of whole tile rows decodes only those tiles
        for top in range(0, height, rows):
            strip = jp2[top : min(height, top + rows), :]
            yield strip if strip.ndim == 3 else strip[:, :, None]

    return width, height, bands, bits, (tile_rows() if tiled else _untiled(jp2, path, rows, bands, bits))


def _untiled(jp2: Any, path: Path, rows: int, bands: int, bits: int) -> Iterator[np.ndarray]:
    from glymur.lib import openjp2 as opj

    stream = opj.stream_create_default_file_stream(str(path), True)
    codec = opj.create_decompress(jp2._codec_format)
    image = None
    try:
        opj.set_error_handler(codec, opj._ERROR_CALLBACK)
        opj.set_warning_handler(codec, opj._WARNING_CALLBACK)
        opj.set_info_handler(codec, None)
        parameters = opj.set_default_decoder_parameters()  # kept alive: OpenJPEG reads it while decoding
        opj.setup_decoder(codec, parameters)
        opj.codec_set_threads(codec, 1)  # ingest already runs one worker per core
        image = opj.read_header(stream, codec)
        header = image.contents
        x0, y0, x1, y1 = header.x0, header.y0, header.x1, header.y1  # decode() overwrites them with the window
        for top in range(y0, y1, rows):
            opj.set_decode_area(codec, image, x0, top, x1, min(y1, top + rows))
            opj.decode(codec, stream, image)
            yield _planes(header, bands, bits)
    finally:
        if image is not None:
            opj.image_destroy(image)
        opj.destroy_codec(codec)
        opj.stream_destroy(stream)


def _planes(image: Any, bands: int, bits: int) -> np.ndarray:
    first = image.comps[0]
    out = np.empty((first.h, first.w, bands), np.uint8 if bits <= 8 else np.uint16)
    for k in range(bands):
        component = image.comps[k]
        count = component.h * component.w
        plane = np.ctypeslib.as_array((ctypes.c_int32 * count).from_address(ctypes.addressof(component.data.contents)))
        out[:, :, k] = plane.reshape(component.h, component.w)
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _png(
    width: int, height: int, bands: int, bits: int, strips: Iterator[np.ndarray], icc: bytes | None
) -> Iterator[bytes]:
    depth = 8 if bits <= 8 else 16
    yield b"\x89PNG\r\n\x1a\n"
    yield _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, _COLOUR_TYPE[bands], 0, 0, 0))
    if icc:
        yield _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    stored = zlib.compressobj(level=0)
    for strip in strips:
        if bits not in (8, 16):  # left-justify, e.g. 12-bit to 16, as libvips does
            strip = strip << (depth - bits)
        strip = strip.astype(">u2", copy=False) if depth == 16 else strip
        lines = np.zeros((strip.shape[0], 1 + strip.shape[1] * strip.shape[2] * strip.itemsize), np.uint8)
        lines[:, 1:] = strip.view(np.uint8).reshape(strip.shape[0], -1)  # filter byte 0 per line
        data = stored.compress(lines.tobytes())
        if data:
            yield _chunk(b"IDAT", data)
    yield _chunk(b"IDAT", stored.flush())
    yield _chunk(b"IEND", b"")
