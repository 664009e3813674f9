"""What a source file is, without its pixels: layout, dimensions, and whether it may be served.

The ``Inspector`` probes a file's headers once (levels, tiles, how libvips loads each level),
keeps the result per worker and in the shared tiers (another worker or host need not probe
the file again), and enforces the untiled-size policy: a stream-decoded source over
``max_untiled_pixels`` is refused before anything is decoded. The image service resolves a
request's layout here once and passes it down (``Inspected``); the manifest build and ingest
use it for sizes and libvips' error lines, never the renderer.

Every ``pyvips.Error`` becomes ``ImageDecodeError``: a corrupt file fails that request only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pyvips

from ..cache import Cache, cache_key
from ..errors import ImageDecodeError
from ..lru import LRU
from .blobs import open_image
from .plan import Layout, Level
from .sources import Located

T = TypeVar("T")
log = logging.getLogger(__name__)

_JPEG_SHRINKS = (1, 2, 4, 8)
LAYOUT_CACHE_SIZE = 16384


@dataclass(frozen=True, slots=True)
class SourceLayout:
    """A Layout plus how to load each level (pyvips keyword arguments)."""

    layout: Layout
    loads: tuple[tuple[tuple[str, Any], ...], ...]
    tiled: bool


@dataclass(frozen=True, slots=True)
class Inspected(Located):
    """A located file with the layout resolved for this request: what the renderer and the
    pass-through readers work from, so neither looks the layout up again."""

    found: SourceLayout

    @classmethod
    def of(cls, source: Located, found: SourceLayout) -> Inspected:
        return cls(
            source.identifier, source.path, source.fingerprint, source.mtime, source.size, found, blob=source.blob
        )


class Inspector:
    def __init__(
        self,
        layout_cache_size: int = LAYOUT_CACHE_SIZE,
        max_untiled_pixels: int = 0,
        metadata: Cache | None = None,
    ) -> None:
        self.max_untiled_pixels = max_untiled_pixels
        self.metadata = metadata  # shared tiers: another worker or host need not probe the file again
        self._layouts: LRU[tuple[str, str], SourceLayout] = LRU(layout_cache_size)

    def layout(self, source: Located) -> SourceLayout:
        """The file's layout: this worker's copy, else the shared tier's, else probed (headers only)."""
        found = self._layouts.get_or_create((source.path, source.fingerprint), lambda: self._load_layout(source))
        self._refuse_untiled(source, found.layout.width, found.layout.height, found.tiled)
        return found

    def known_layout(self, source: Located) -> SourceLayout | None:
        """The layout if this worker knows it already (no probe, no shared tier); else None."""
        found = self._layouts.get((source.path, source.fingerprint))
        if found is None:
            return None
        self._refuse_untiled(source, found.layout.width, found.layout.height, found.tiled)
        return found

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
            width, height, tiled = _guard(source, lambda: header(source))
            if self.metadata is not None:
                self.metadata.put(key, f"{width},{height},{int(tiled)}".encode())
        self._refuse_untiled(source, width, height, bool(tiled))
        return width, height

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
        found = _guard(source, lambda: probe(source))
        if self.metadata is not None:
            self.metadata.put(key, layout_to_json(found))
        return found


def header(source: Located) -> tuple[int, int, bool]:
    """Width, height and whether it is a tiled TIFF: one open, no pixels."""
    image = open_image(source)
    tiled = image.get("vips-loader").startswith("tiff") and "tile-width" in image.get_fields()
    return image.width, image.height, tiled


def probe(source: Located) -> SourceLayout:
    """Read headers only: dimensions, pyramid levels, tile size."""
    image = open_image(source)
    loader = image.get("vips-loader")
    width, height = image.width, image.height
    levels = [Level(1, width, height)]
    loads: list[tuple[tuple[str, Any], ...]] = [()]
    fields = set(image.get_fields())
    if loader.startswith("tiff"):
        if "n-subifds" in fields and image.get("n-subifds") > 0:
            for i in range(image.get("n-subifds")):
                _add_level(levels, loads, open_image(source, subifd=i), width, (("subifd", i),))
        elif image.get("n-pages") > 1:
            for page in range(1, image.get("n-pages")):
                sub = open_image(source, page=page)
                if not _add_level(levels, loads, sub, width, (("page", page),)):
                    break  # a multi-page document, not a pyramid: stop at the first non-reduction
    elif loader.startswith("jpeg"):
        for shrink in _JPEG_SHRINKS[1:]:
            _add_level(levels, loads, open_image(source, shrink=shrink), width, (("shrink", shrink),))
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
