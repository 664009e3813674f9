"""The only serving-side pyvips importer: read a source's layout, execute a RenderPlan.

Tiled TIFFs are opened at the chosen pyramid level only, so a tile costs a crop
of one page, never a full decode; untiled formats (JPEG, PNG, strip TIFF) are
opened with shrink-on-load and sequential access, which reads only what the
crop needs. Handles live for one request (see ``_open_level``); what is kept
per file is its layout and, for JPEG-tiled TIFFs, a pass-through reader.

Every ``pyvips.Error`` becomes ``ImageDecodeError`` here: a corrupt file fails
that request only. A render that passes its deadline is stopped by libvips itself
(``_Deadline``) and becomes ``RenderTimeout``: no request holds a worker thread
for longer than ``render_timeout``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pyvips

from ..cache import Cache, cache_key
from ..errors import ImageDecodeError, RenderTimeout
from ..lru import LRU
from ..metrics import RENDER_TIMEOUTS
from .model import Format, Quality
from .passthrough import TiffTiles, open_reader
from .plan import Layout, Level, RenderPlan, stored_tile
from .sources import Located

T = TypeVar("T")
log = logging.getLogger(__name__)

_JPEG_SHRINKS = (1, 2, 4, 8)
_KEEP_NONE: dict[str, Any] = {"keep": "none"} if pyvips.at_least_libvips(8, 15) else {"strip": True}


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    jpeg_quality: int = 85
    webp_quality: int = 80
    png_compression: int = 6


@dataclass(frozen=True, slots=True)
class SourceLayout:
    """A Layout plus how to load each level (pyvips keyword arguments)."""

    layout: Layout
    loads: tuple[tuple[tuple[str, Any], ...], ...]
    tiled: bool


def configure_vips(concurrency: int) -> None:
    """Our own handle cache replaces libvips' operation cache, which would keep stale files and decoded copies."""
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.concurrency_set(concurrency)


class Renderer:
    def __init__(
        self,
        options: EncodeOptions,
        handle_cache_size: int = 64,
        layout_cache_size: int = 16384,
        max_untiled_pixels: int = 0,
        metadata: Cache | None = None,
        render_timeout: float = 0.0,
    ) -> None:
        self.options = options
        self.max_untiled_pixels = max_untiled_pixels
        self.render_timeout = render_timeout  # seconds; 0: no deadline
        self.metadata = metadata  # shared tiers: another worker or host need not probe the file again
        self._readers: LRU[tuple[str, str], TiffTiles | bool] = LRU(handle_cache_size)
        self._layouts: LRU[tuple[str, str], SourceLayout] = LRU(layout_cache_size)

    def layout(self, source: Located) -> Layout:
        return self._source_layout(source).layout

    def known_layout(self, source: Located) -> Layout | None:
        """The layout if this worker knows it already (no probe, no shared tier); else None."""
        found = self._layouts.get((source.path, source.fingerprint))
        if found is None:
            return None
        self._refuse_untiled(source, found.layout.width, found.layout.height, found.tiled)
        return found.layout

    def passthrough(self, source: Located, plan: RenderPlan, *, opened_only: bool = False) -> bytes | None:
        """The stored JPEG tile that answers ``plan`` exactly, without decoding; None otherwise.

        ``opened_only``: only with a layout and a reader already at hand, so the work is one
        ``pread`` (for the event loop; the first tile of a file opens them on a thread).
        """
        key = (source.path, source.fingerprint)
        found = self._layouts.get(key) if opened_only else self._source_layout(source)
        if found is None or not found.tiled:
            return None
        layout = found.layout
        where = stored_tile(plan, layout.tile_width, layout.tile_height)
        if where is None:
            return None
        if opened_only:
            reader = self._readers.get(key)
        else:
            reader = self._readers.get_or_create(key, lambda: open_reader(source.path, source.fingerprint) or False)
        if not isinstance(reader, TiffTiles):
            return None
        level = reader.level_for_load(found.loads[plan.level])
        if level is None or not level.passthrough or (level.tile_width, level.tile_height) != plan.size:
            return None
        return reader.jpeg(level, *where)

    def render(self, source: Located, plan: RenderPlan) -> bytes:
        deadline = _Deadline(self.render_timeout)
        try:
            image, sequential = self._open_level(source, plan.level)
            image = _apply(image, plan, sequential, deadline.watch)
            return _encode(image, plan.format, self.options, deadline.watch)
        except pyvips.Error as err:
            if deadline.passed:
                RENDER_TIMEOUTS.inc()
                raise RenderTimeout(
                    f"rendering took longer than {self.render_timeout:g} s; try again later",
                    retry_after=max(1, math.ceil(self.render_timeout)),
                ) from None
            log.error("cannot render %r (%s): %s", source.identifier, source.path, vips_error_line(err))
            raise ImageDecodeError("the source image could not be decoded", "identifier") from None

    # -- sources -------------------------------------------------------------------

    def dimensions(self, source: Located) -> tuple[int, int]:
        """Full width and height, for manifests: from a known layout, else one header read.

        A manifest build touches thousands of images once; probing every pyramid level (about
        four opens per file) is left to the first info.json or tile request.
        """
        found = self._layouts.get((source.path, source.fingerprint))
        if found is None and self.metadata is not None:
            stored = self.metadata.get(cache_key(source.identifier, f"m:{source.fingerprint}"))
            found = layout_from_json(stored) if stored is not None else None
        if found is not None:
            self._refuse_untiled(source, found.layout.width, found.layout.height, found.tiled)
            return found.layout.width, found.layout.height
        key = cache_key(source.identifier, f"s:{source.fingerprint}")
        stored = self.metadata.get(key) if self.metadata is not None else None
        if stored is not None:
            width, height, tiled = (int(part) for part in stored.split(b","))
        else:
            width, height, tiled = _guard(source, lambda: header(source.path))
            if self.metadata is not None:
                self.metadata.put(key, f"{width},{height},{int(tiled)}".encode())
        self._refuse_untiled(source, width, height, bool(tiled))
        return width, height

    def _source_layout(self, source: Located) -> SourceLayout:
        found = self._layouts.get_or_create((source.path, source.fingerprint), lambda: self._load_layout(source))
        self._refuse_untiled(source, found.layout.width, found.layout.height, found.tiled)
        return found

    def _refuse_untiled(self, source: Located, width: int, height: int, tiled: bool) -> None:
        pixels = width * height
        if not tiled and self.max_untiled_pixels and pixels > self.max_untiled_pixels:
            log.warning("refusing %r: %d untiled pixels (limit %d)", source.identifier, pixels, self.max_untiled_pixels)
            raise ImageDecodeError(
                "the source image is too large to serve untiled; ingest it as a pyramid", "identifier"
            )

    def _load_layout(self, source: Located) -> SourceLayout:
        key = cache_key(source.identifier, f"m:{source.fingerprint}")
        stored = self.metadata.get(key) if self.metadata is not None else None
        if stored is not None:
            return layout_from_json(stored)
        found = _guard(source, lambda: probe(source.path))
        if self.metadata is not None:
            self.metadata.put(key, layout_to_json(found))
        return found

    def _open_level(self, source: Located, level: int) -> tuple[pyvips.Image, bool]:
        """The level's image, and whether it can only be read top to bottom.

        Opened per request and dropped with it: libvips keeps decoded tiles attached to an open
        image, so long-lived handles grew a worker's memory without bound (measured: +220 MB over
        3 000 renders). Re-opening costs ~0.6 ms per rendered tile; pass-through tiles never open.
        """
        found = self._source_layout(source)
        kwargs = dict(found.loads[level])
        if not found.tiled:
            return pyvips.Image.new_from_file(source.path, access="sequential", fail=True, **kwargs), True
        return pyvips.Image.new_from_file(source.path, fail=True, **kwargs), False


def header(path: str) -> tuple[int, int, bool]:
    """Width, height and whether it is a tiled TIFF: one open, no pixels."""
    image = pyvips.Image.new_from_file(path)
    tiled = image.get("vips-loader").startswith("tiff") and "tile-width" in image.get_fields()
    return image.width, image.height, tiled


def probe(path: str) -> SourceLayout:
    """Read headers only: dimensions, pyramid levels, tile size."""
    image = pyvips.Image.new_from_file(path)
    loader = image.get("vips-loader")
    width, height = image.width, image.height
    levels = [Level(1, width, height)]
    loads: list[tuple[tuple[str, Any], ...]] = [()]
    fields = set(image.get_fields())
    if loader.startswith("tiff"):
        if "n-subifds" in fields and image.get("n-subifds") > 0:
            for i in range(image.get("n-subifds")):
                _add_level(levels, loads, pyvips.Image.new_from_file(path, subifd=i), width, (("subifd", i),))
        elif image.get("n-pages") > 1:
            for page in range(1, image.get("n-pages")):
                sub = pyvips.Image.new_from_file(path, page=page)
                if not _add_level(levels, loads, sub, width, (("page", page),)):
                    break  # a multi-page document, not a pyramid: stop at the first non-reduction
    elif loader.startswith("jpeg"):
        for shrink in _JPEG_SHRINKS[1:]:
            _add_level(levels, loads, pyvips.Image.new_from_file(path, shrink=shrink), width, (("shrink", shrink),))
    tiled = "tile-width" in fields and loader.startswith("tiff")
    tile_w = image.get("tile-width") if tiled else 0
    tile_h = image.get("tile-height") if tiled else 0
    return SourceLayout(Layout(width, height, tuple(levels), tile_w, tile_h), tuple(loads), tiled)


def layout_to_json(found: SourceLayout) -> bytes:
    layout = found.layout
    return json.dumps(
        {
            "width": layout.width,
            "height": layout.height,
            "levels": [[lv.factor, lv.width, lv.height] for lv in layout.levels],
            "tile": [layout.tile_width, layout.tile_height],
            "loads": [[list(pair) for pair in load] for load in found.loads],
            "tiled": found.tiled,
        }
    ).encode()


def layout_from_json(data: bytes) -> SourceLayout:
    raw = json.loads(data)
    levels = tuple(Level(*level) for level in raw["levels"])
    layout = Layout(raw["width"], raw["height"], levels, *raw["tile"])
    loads = tuple(tuple((key, value) for key, value in load) for load in raw["loads"])
    return SourceLayout(layout, loads, raw["tiled"])


def _add_level(
    levels: list[Level],
    loads: list[tuple[tuple[str, Any], ...]],
    sub: pyvips.Image,
    width: int,
    load: tuple[tuple[str, Any], ...],
) -> bool:
    """Append ``sub`` if it is a power-of-two reduction of the full image."""
    factor = round(width / sub.width) if sub.width else 0
    if factor < 2 or factor & (factor - 1) or abs(width / factor - sub.width) > 1 or factor <= levels[-1].factor:
        return False
    levels.append(Level(factor, sub.width, sub.height))
    loads.append(load)
    return True


def _guard(source: Located, work: Callable[[], T]) -> T:
    try:
        return work()
    except pyvips.Error as err:
        log.error("cannot read %r (%s): %s", source.identifier, source.path, vips_error_line(err))
        raise ImageDecodeError("the source image could not be decoded", "identifier") from None


def vips_error_line(err: pyvips.Error) -> str:
    """libvips' message for a log line or a client: its first line only."""
    return (str(err.detail or err.message).strip().splitlines() or ["?"])[0]


# -- pipeline --------------------------------------------------------------------------


class _Deadline:
    """Stops libvips once ``seconds`` have passed (0: never).

    libvips emits ``eval`` on a watched image as its threads compute it; killing the image there
    makes the evaluation (a save, ``copy_memory``) fail with ``pyvips.Error``, and ``passed`` says
    why. Safe per request: every render opens its own images and libvips' operation cache is off.
    """

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds if seconds > 0 else math.inf
        self.passed = False

    def watch(self, image: pyvips.Image) -> pyvips.Image:
        if self.end != math.inf:
            image.set_progress(True)
            image.signal_connect("eval", self._check)
        return image

    def _check(self, image: pyvips.Image, _progress: Any) -> None:
        if time.monotonic() > self.end:
            self.passed = True
            image.set_kill(True)


Watch = Callable[[pyvips.Image], pyvips.Image]


def _apply(image: pyvips.Image, plan: RenderPlan, sequential: bool, watch: Watch) -> pyvips.Image:
    image = image.crop(*plan.crop)
    if plan.scale is not None:
        hscale, vscale = plan.scale
        image = image.resize(float(hscale), vscale=float(vscale))
    image = _fit(image, *plan.size)
    image = _to_srgb8(image)
    if sequential and (plan.degrees or plan.mirror):
        image = watch(image).copy_memory()  # rotation reads out of order; the output is bounded by the size limits
    if plan.mirror:
        image = image.fliphor()
    image = _rotate(image, plan.degrees, plan.format)
    return _quality(image, plan.quality)


def _fit(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """Exact output size: resampling may be a pixel off and levels are rounded down; copy edges."""
    if image.width == width and image.height == height:
        return image
    if image.width > width or image.height > height:
        image = image.crop(0, 0, min(image.width, width), min(image.height, height))
    if image.width < width or image.height < height:
        image = image.embed(0, 0, width, height, extend="copy")
    return image


def _to_srgb8(image: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB (or 8-bit grey), keeping any alpha."""
    interpretation = image.interpretation
    if interpretation in ("b-w", "grey16"):
        image = image.colourspace("b-w") if interpretation == "grey16" else image
    elif interpretation not in ("srgb",):
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def _rotate(image: pyvips.Image, degrees: Any, fmt: Format) -> pyvips.Image:
    if degrees == 0:
        return image
    if degrees == 90:
        return image.rot90()
    if degrees == 180:
        return image.rot180()
    if degrees == 270:
        return image.rot270()
    if fmt.has_alpha and not image.hasalpha():
        image = image.bandjoin(255)
    background = [0] * image.bands if fmt.has_alpha else [255] * image.bands
    return image.similarity(angle=float(degrees), background=background, interpolate=pyvips.Interpolate.new("bilinear"))


def _quality(image: pyvips.Image, quality: Quality) -> pyvips.Image:
    if quality in (Quality.DEFAULT, Quality.COLOR):
        return image
    alpha = image.extract_band(image.bands - 1) if image.hasalpha() else None
    grey = image.colourspace("b-w") if image.bands >= 3 else image
    grey = grey.extract_band(0)
    if quality is Quality.BITONAL:
        grey = (grey > 127).ifthenelse(255, 0).cast("uchar")
    grey = grey.copy(interpretation="b-w")
    return grey.bandjoin(alpha) if alpha is not None else grey


def _encode(image: pyvips.Image, fmt: Format, options: EncodeOptions, watch: Watch) -> bytes:
    if fmt is Format.JPG and image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    image = watch(image)  # the image the save evaluates
    if fmt is Format.JPG:
        return image.jpegsave_buffer(Q=options.jpeg_quality, **_KEEP_NONE)
    if fmt is Format.PNG:
        return image.pngsave_buffer(compression=options.png_compression, **_KEEP_NONE)
    if fmt is Format.WEBP:
        return image.webpsave_buffer(Q=options.webp_quality, **_KEEP_NONE)
    if fmt is Format.TIF:
        return image.tiffsave_buffer(compression="deflate", **_KEEP_NONE)
    return image.gifsave_buffer(**_KEEP_NONE)
