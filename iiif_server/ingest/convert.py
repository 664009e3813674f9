"""One raw scan -> one access master: a 256-px-tiled, JPEG-compressed pyramidal TIFF, 8-bit sRGB or grey.

Every pixel goes through libvips, streamed top to bottom (``access="sequential"``), so memory stays
bounded however large the scan; only an EXIF rotation of 90° or 270° needs random access, which
libvips backs with a temporary file for large images.

Faithful, not merely converted: EXIF orientation is applied; an embedded ICC profile is honoured
(transformed to sRGB, relative colorimetric) rather than dropped; CMYK without a profile goes
through libvips' built-in CMYK profile; 16-bit is scaled, not clipped, to 8-bit; grey stays one
band; alpha is kept, with a lossless compression since JPEG-in-TIFF has no alpha; resolution
(DPI) is carried over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyvips

from ..image.inspector import vips_error_line
from . import jp2_suffixes

log = logging.getLogger(__name__)

EXTENSIONS = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".webp", *jp2_suffixes.SUFFIXES)


class ConvertError(Exception):
    """This file cannot become a master; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class MasterOptions:
    quality: int = 90
    compression: str = "jpeg"  # colour and grey masters
    alpha_compression: str = "deflate"  # masters with transparency: lossless, keeps alpha
    tile_size: int = 256


@dataclass(frozen=True, slots=True)
class Converted:
    width: int
    height: int
    bands: int
    source_format: str  # libvips loader, e.g. "tiffload"
    notes: tuple[str, ...]  # what was done to the pixels, for the catalogue


def open_scan(path: Path) -> pyvips.Image:
    """The scan's first image, streamed; refuses what would not make one faithful master."""
    if path.suffix.lower() in jp2_suffixes.SUFFIXES:
        from . import jp2  # numpy and glymur only when a JPEG 2000 scan comes

        try:
            return jp2.open_jp2(path)
        except (jp2.JP2Error, pyvips.Error) as err:
            raise ConvertError(f"not a readable JPEG 2000 image: {err}") from None
    try:
        image = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="warning")
    except pyvips.Error as err:
        raise ConvertError(f"not a readable image: {vips_error_line(err)}") from None
    fields = set(image.get_fields())
    if "n-pages" in fields and image.get("n-pages") > 1 and image.get("vips-loader").startswith("tiff"):
        pages = image.get("n-pages")
        try:
            second = pyvips.Image.new_from_file(str(path), page=1)
        except pyvips.Error as err:
            raise ConvertError(f"not a readable image: {vips_error_line(err)}") from None
        if second.width * 2 > image.width + 2:  # not a pyramid's reduced level: another page
            raise ConvertError(f"multi-page TIFF ({pages} pages): split it into one file per page and ingest those")
    return image


def to_master(source: Path, target: Path, options: MasterOptions) -> Converted:
    """Write the master of ``source`` to ``target`` (the caller makes that a temporary name)."""
    pyvips.cache_set_max(0)  # one pass over each file: libvips' operation cache only holds memory
    image = open_scan(source)
    loader = "jp2 (OpenJPEG)" if source.suffix.lower() in jp2_suffixes.SUFFIXES else image.get("vips-loader")
    image, notes = _orient(source, image)
    image, more = _to_8bit_srgb(image)
    notes += more
    alpha = image.hasalpha()
    compression = options.alpha_compression if alpha else options.compression
    save: dict[str, object] = {
        "tile": True,
        "tile_width": options.tile_size,
        "tile_height": options.tile_size,
        "pyramid": True,
        "compression": compression,
        "bigtiff": image.width * image.height * image.bands > 3_000_000_000,
    }
    if compression in ("jpeg", "webp"):
        save["Q"] = options.quality
    try:
        image.tiffsave(str(target), **save)
    except pyvips.Error as err:
        raise ConvertError(f"cannot decode or write: {vips_error_line(err)}") from None
    return Converted(image.width, image.height, image.bands, loader, tuple(notes))


def _orient(path: Path, image: pyvips.Image) -> tuple[pyvips.Image, list[str]]:
    orientation = image.get("orientation") if "orientation" in image.get_fields() else 1
    if orientation in (1, 0):
        return image, []
    # Rotations by 90° read columns: they need random access, so reopen without "sequential".
    whole = pyvips.Image.new_from_file(str(path), fail_on="warning")
    return whole.autorot(), [f"EXIF orientation {orientation} applied"]


def _to_8bit_srgb(image: pyvips.Image) -> tuple[pyvips.Image, list[str]]:
    notes: list[str] = []
    alpha = image.extract_band(image.bands - 1) if image.hasalpha() else None
    colour = image.extract_band(0, n=image.bands - 1) if alpha is not None else image
    interpretation = colour.interpretation
    grey = interpretation in ("b-w", "grey16") or colour.bands == 1
    has_profile = "icc-profile-data" in image.get_fields()
    if interpretation == "cmyk":
        colour = colour.icc_transform("srgb", embedded=has_profile, input_profile="cmyk", intent="relative", depth=8)
        notes.append("CMYK converted to sRGB" + (" through its embedded ICC profile" if has_profile else ""))
    elif has_profile:
        # depth=8: icc_transform keeps 16-bit input 16-bit, and the cast below would then clip it to white
        colour = colour.icc_transform("srgb", embedded=True, intent="relative", depth=8)
        if grey:  # a grey profile (gamma, dot gain) maps to neutral sRGB: back to one band
            colour = colour.colourspace("b-w")
        notes.append("embedded ICC profile converted to sRGB")
    elif colour.format == "ushort" or interpretation in ("rgb16", "grey16"):
        colour = colour.colourspace("b-w" if grey else "srgb")
        notes.append("16-bit scaled to 8-bit")
    elif colour.format != "uchar":
        colour = colour.colourspace("b-w" if grey else "srgb").cast("uchar")
        notes.append(f"{image.format} pixels converted to 8-bit")
    if colour.format != "uchar":
        colour = colour.cast("uchar")
    if alpha is not None:
        if alpha.format == "ushort":
            alpha = alpha >> 8
        colour = colour.bandjoin(alpha.cast("uchar"))
    colour = colour.copy(interpretation="b-w" if colour.bands <= 2 else "srgb")
    if has_profile or "icc-profile-data" in colour.get_fields():
        colour = colour.copy()
        colour.remove("icc-profile-data")  # pixels are sRGB now: a stale profile would mislead viewers
    return colour, notes
