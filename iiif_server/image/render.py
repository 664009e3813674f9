"""Execute a RenderPlan with pyvips: the pixels of a request.

Tiled TIFFs are opened at the chosen pyramid level only, so a tile costs a crop
of one page, never a full decode; untiled formats (JPEG, PNG, strip TIFF) are
opened with shrink-on-load and sequential access, which reads only what the
crop needs. Handles live for one request (see ``_open_level``); what is kept
per file is its layout (``inspector.py``), for JPEG-tiled TIFFs a pass-through
reader (``readers.py``), and, within a byte budget, whole decoded levels that
whole-image views read (see ``Renderer._level``).

Every ``pyvips.Error`` becomes ``ImageDecodeError`` here: a corrupt file fails
that request only. A render that passes its deadline, or that no client wants any more
(``abandoned``: they all disconnected), is stopped by libvips itself (``_Deadline``) and
becomes ``RenderTimeout`` or ``ClientGone``: no request holds a worker thread, nor its CPU,
for longer than ``render_timeout``. Every phase is watched: the decoded-level copy, the
copy before rotating a streamed source, and the save. The one phase libvips cannot stop,
GIF quantisation, runs for large outputs in a process that is killed instead (``isolated.py``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyvips

from ..errors import ClientGone, ImageDecodeError, RenderTimeout
from ..lru import LRU
from ..metrics import RENDER_TIMEOUTS, RENDERS, RENDERS_ABANDONED
from .blobs import open_image
from .inspector import Inspected, SourceLayout, vips_error_line
from .isolated import ChildFailed, Stopped, run_in_child
from .model import Format, Quality
from .plan import RenderPlan
from .sources import Located
from .watermark import Watermark

log = logging.getLogger(__name__)

#: Downscaling filter. Lanczos-2 rather than libvips' default Lanczos-3: the level read is a box-filtered,
#: JPEG-compressed reduction at 1-2x the output, whose noise Lanczos-3 keeps sharper than the truth.
#: SSIM against a Lanczos-3 reduction of the full resolution (bench image): full/1024, 0.9406 -> 0.9433
#: (iipsrv's bilinear 0.9423), full/777, 0.9681 -> 0.9692; on sharp-edged content 0.003-0.007 below
#: Lanczos-3 (still 0.01-0.1 above iipsrv). A third fewer taps (6-27 % fewer instructions); upscaling
#: is bicubic whatever the kernel. See docs/architecture.md, "Downscaling filter".
RESAMPLE_KERNEL = "lanczos2"
#: Decoded pyramid levels kept per worker, in bytes (``Renderer._level``); one level may take a quarter.
DECODED_LEVELS_BYTES = 64 * 2**20
_BAND_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4, "double": 8}
#: GIF outputs above this many pixels render in a process the deadline can kill (``isolated.py``):
#: gifsave's quantisation (~0.2-3 µs a pixel, unstoppable) would otherwise outlive the deadline by
#: up to ~1.5 s here, and the ~0.5 s a process costs to start is small beside such a render.
ISOLATED_GIF_PIXELS = 500_000
#: AVIF outputs above this many pixels render there too: heifsave hands the whole picture to the AV1
#: encoder, which has no ``eval`` either (~65 ns a pixel at effort 1, up to ~0.5 µs with alpha on noise).
ISOLATED_AVIF_PIXELS = 1_000_000
_KEEP_NONE: dict[str, Any] = {"keep": "none"} if pyvips.at_least_libvips(8, 15) else {"strip": True}


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    jpeg_quality: int = 85
    webp_quality: int = 80
    png_compression: int = 6
    avif_quality: int = 60
    avif_effort: int = 1  # AV1 encoder speed 0-9: 0 fastest; see docs/performance.md, "AVIF (issue 13)"


def configure_vips(concurrency: int) -> None:
    """Our own handle cache replaces libvips' operation cache, which would keep stale files and decoded copies."""
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.concurrency_set(concurrency)


class Renderer:
    """Pixels for a plan: opens the plan's level of the source, crops, resamples, encodes.

    Works from the layout the request resolved (``Inspected``, see ``ImageService.locate``);
    the layouts themselves, the untiled-size policy and the pass-through readers live in
    ``inspector.py`` and ``readers.py``.
    """

    def __init__(
        self,
        options: EncodeOptions,
        render_timeout: float = 0.0,
        decoded_levels_bytes: int = DECODED_LEVELS_BYTES,
        watermark: Watermark | None = None,
    ) -> None:
        self.options = options
        self.watermark = watermark  # drawn on degraded plans (``RenderPlan.degraded``); None: no mark
        self.render_timeout = render_timeout  # seconds; 0: no deadline
        self._decoded: LRU[tuple[str, str, int], pyvips.Image] = LRU(decoded_levels_bytes, _image_bytes)

    def render(self, source: Inspected, plan: RenderPlan, abandoned: Abandoned | None = None) -> bytes:
        """The encoded bytes; stopped at the deadline, or as soon as ``abandoned()`` (nobody wants them)."""
        deadline = _Deadline(self.render_timeout, abandoned)
        RENDERS.inc()
        try:
            if plan.size[0] * plan.size[1] > _isolated_pixels(plan.format):
                return run_in_child(_render_alone, (source, plan, self.options, self.watermark), deadline.due)
            image, sequential = self._level(source, plan, deadline.watch)
            image = _apply(image, plan, sequential, deadline.watch, _mark(self.watermark, source, plan))
            return _encode(image, plan.format, self.options, deadline.watch)
        except (pyvips.Error, Stopped, ChildFailed) as err:
            if deadline.reason is _TIMEOUT:
                RENDER_TIMEOUTS.inc()
                raise RenderTimeout(
                    f"rendering took longer than {self.render_timeout:g} s; try again later",
                    retry_after=max(1, math.ceil(self.render_timeout)),
                ) from None
            if deadline.reason is _ABANDONED:
                RENDERS_ABANDONED.inc()
                raise ClientGone("the client disconnected; rendering stopped") from None
            reason = vips_error_line(err) if isinstance(err, pyvips.Error) else str(err)
            log.error("cannot render %r (%s): %s", source.identifier, source.path, reason)
            raise ImageDecodeError("the source image could not be decoded", "identifier") from None

    @staticmethod
    def _source_layout(source: Inspected) -> SourceLayout:
        """The layout resolved for this request, never looked up again."""
        return source.found

    def _level(self, source: Inspected, plan: RenderPlan, watch: Watch) -> tuple[pyvips.Image, bool]:
        """The plan's level: decoded in memory if kept from an earlier render, else opened from the file.

        A level whose decoded pixels fit a quarter of ``decoded_levels_bytes`` and which the crop
        mostly covers (a whole-image view: ``full/w,``, thumbnails) is decoded whole and kept, so the
        next size of the same view skips the file and the JPEG decode, about half of its render
        (iipsrv keeps decoded tiles for the same reason). Bounded in bytes, unlike open handles
        (see ``_open_level``); keyed by fingerprint, so a replaced file is never read stale.
        """
        key = (source.path, source.fingerprint, plan.level)
        kept = self._decoded.get(key)
        if kept is not None:
            return kept, False
        image, sequential = self._open_level(source, plan.level)
        _, _, width, height = plan.crop
        whole = image.width * image.height
        if 2 * width * height >= whole and 4 * _image_bytes(image) <= self._decoded.maxsize:
            image = watch(image).copy_memory()
            self._decoded.put(key, image)
            return image, False
        return image, sequential

    def _open_level(self, source: Inspected, level: int) -> tuple[pyvips.Image, bool]:
        return _open_level(self._source_layout(source), source, level)


def _open_level(found: SourceLayout, source: Located, level: int) -> tuple[pyvips.Image, bool]:
    """The level's image, and whether it can only be read top to bottom.

    Opened per request and dropped with it: libvips keeps decoded tiles attached to an open
    image, so long-lived handles grew a worker's memory without bound (measured: +220 MB over
    3 000 renders). Re-opening costs ~0.6 ms per rendered tile; pass-through tiles never open.
    """
    kwargs = dict(found.loads[level])
    if not found.tiled:
        return open_image(source, access="sequential", fail=True, **kwargs), True
    return open_image(source, fail=True, **kwargs), False


def _isolated_pixels(fmt: Format) -> float:
    """Outputs above this many pixels render in a child process (formats whose encoder cannot be stopped)."""
    if fmt is Format.GIF:
        return ISOLATED_GIF_PIXELS
    if fmt is Format.AVIF:
        return ISOLATED_AVIF_PIXELS
    return math.inf


def _render_alone(
    source: Inspected, plan: RenderPlan, options: EncodeOptions, watermark: Watermark | None = None
) -> bytes:
    """A render in a child process (``isolated.py``): unwatched, as the parent kills the process to stop it."""
    image, sequential = _open_level(source.found, source, plan.level)
    image = _apply(image, plan, sequential, _unwatched, _mark(watermark, source, plan))
    return _encode(image, plan.format, options, _unwatched)


def _unwatched(image: pyvips.Image) -> pyvips.Image:
    return image


def _image_bytes(image: pyvips.Image) -> int:
    return image.width * image.height * image.bands * _BAND_BYTES.get(image.format, 16)


# -- pipeline --------------------------------------------------------------------------


#: True once no client wants the render any more (``SingleFlight``: every caller disconnected).
Abandoned = Callable[[], bool]
_TIMEOUT, _ABANDONED = "timeout", "abandoned"


class _Deadline:
    """Stops libvips once ``seconds`` have passed (0: never) or ``abandoned()`` turns true.

    libvips emits ``eval`` on a watched image as its threads compute it (every few ms); killing the
    image there makes the evaluation (a save, ``copy_memory``) fail with ``pyvips.Error``, and
    ``reason`` says why. Safe per request: every render opens its own images and libvips' operation
    cache is off.
    """

    def __init__(self, seconds: float, abandoned: Abandoned | None = None) -> None:
        self.end = time.monotonic() + seconds if seconds > 0 else math.inf
        self.abandoned = abandoned
        self.reason: str | None = None  # _TIMEOUT or _ABANDONED once stopped

    def due(self) -> bool:
        """Whether the render must stop now (and from then on)."""
        if self.reason is None:
            if time.monotonic() > self.end:
                self.reason = _TIMEOUT
            elif self.abandoned is not None and self.abandoned():
                self.reason = _ABANDONED
        return self.reason is not None

    def watch(self, image: pyvips.Image) -> pyvips.Image:
        if self.end != math.inf or self.abandoned is not None:
            image.set_progress(True)
            image.signal_connect("eval", self._check)
        return image

    def _check(self, image: pyvips.Image, _progress: Any) -> None:
        if self.due():
            image.set_kill(True)


Watch = Callable[[pyvips.Image], pyvips.Image]


def _mark(watermark: Watermark | None, source: Inspected, plan: RenderPlan) -> Mark | None:
    """The watermark for this plan's output, placed by where its crop lies on the canvas; None if unmarked."""
    if watermark is None or not plan.degraded:
        return None
    layout = source.found.layout
    factor = layout.levels[plan.level].factor
    left, top, width, _ = plan.crop
    scale = plan.size[0] / (width * factor)  # output pixels per full-resolution pixel
    canvas = (layout.width, layout.height)
    return lambda image: watermark.apply(image, (left * factor, top * factor), scale, canvas)


Mark = Callable[[pyvips.Image], pyvips.Image]


def _apply(
    image: pyvips.Image, plan: RenderPlan, sequential: bool, watch: Watch, mark: Mark | None = None
) -> pyvips.Image:
    """Crop, resample, 8-bit sRGB, then the watermark (if ``mark``), mirror, rotation and quality:
    the mark lies on the canvas, so it turns with the image and tiles line up."""
    image = image.crop(*plan.crop)
    if plan.scale is not None:
        hscale, vscale = plan.scale
        image = image.resize(float(hscale), vscale=float(vscale), kernel=RESAMPLE_KERNEL)
    image = _fit(image, *plan.size)
    image = _to_srgb8(image)
    if mark is not None:
        image = mark(image)
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
    if fmt is Format.AVIF:
        return image.heifsave_buffer(
            compression="av1", Q=options.avif_quality, effort=options.avif_effort, **_KEEP_NONE
        )
    return image.gifsave_buffer(**_KEEP_NONE)
