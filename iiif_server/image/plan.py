"""Pure geometry: a parsed request + the image's layout -> exactly what to read and make.

Keeps IIIF's logical order (region, size, rotation, quality, format) but picks
the physical plan: read the smallest pyramid level (or shrink-on-load factor)
that still has at least the requested resolution, crop there, and resample
only if the level is not already at the output scale. A tile request on the
tile grid therefore becomes a plain crop of one stored level.

Arithmetic is exact (``Fraction``) and rounds half up, so sizes match the spec
and other servers to the pixel. No pyvips, no Flask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..errors import InvalidRequest, SizeNotAllowed
from .model import (
    ApiVersion,
    BestFit,
    Exact,
    Format,
    Full,
    Height,
    ImageRequest,
    Limits,
    Max,
    Percent,
    Quality,
    RegionPercent,
    RegionPixels,
    Size,
    Square,
    Width,
)

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Level:
    """One resolution the source can be read at: a pyramid page or a shrink-on-load factor."""

    factor: int  # nominal downsampling from full resolution (1, 2, 4, ...)
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Layout:
    """What the server knows of a source image; cached per file fingerprint."""

    width: int
    height: int
    levels: tuple[Level, ...]  # levels[0] is full resolution
    tile_width: int = 0  # the source's own tiles; 0 if it has none
    tile_height: int = 0


@dataclass(frozen=True, slots=True)
class Resolved:
    region: Box  # in full-resolution pixels, clipped to the image
    size: tuple[int, int]  # output size before rotation
    max_size: tuple[int, int]  # what ``max`` would give for this region


@dataclass(frozen=True, slots=True)
class RenderPlan:
    level: int  # index into Layout.levels
    crop: Box  # on that level
    scale: tuple[Fraction, Fraction] | None  # resample factors after crop; None: already at output scale
    size: tuple[int, int]  # exact output size before rotation
    mirror: bool
    degrees: Fraction
    quality: Quality
    format: Format
    degraded: bool = False  # a restricted image's public view: watermarked, never passed through


def round_half_up(value: Fraction) -> int:
    return _div_half_up(value.numerator, value.denominator)


def _div_half_up(numerator: int, denominator: int) -> int:
    """round_half_up(numerator / denominator) for non-negative integers, without Fractions."""
    return (2 * numerator + denominator) // (2 * denominator)


def resolve_region(request: ImageRequest, width: int, height: int) -> Box:
    """Region in image pixels, cropped at the image's edge (3.0 §4.1)."""
    region = request.region
    if isinstance(region, Full):
        return 0, 0, width, height
    if isinstance(region, Square):
        side = min(width, height)
        return (width - side) // 2, (height - side) // 2, side, side
    if isinstance(region, RegionPixels):
        x, y, w, h = region.x, region.y, region.w, region.h
    else:
        assert isinstance(region, RegionPercent)
        x = round_half_up(region.x * width / 100)
        y = round_half_up(region.y * height / 100)
        w = max(1, round_half_up(region.w * width / 100))
        h = max(1, round_half_up(region.h * height / 100))
    if x >= width or y >= height:
        raise InvalidRequest("region lies entirely outside the image", "region")
    return x, y, min(w, width - x), min(h, height - y)


def rotated_size(size: tuple[int, int], degrees: Fraction) -> tuple[int, int]:
    """The output's size after rotation: what ``render._rotate`` makes.

    Multiples of 90° swap or keep the sides; any other angle gives the rotated image's bounding
    box, which libvips' ``similarity`` rounds to the nearest pixel (checked against it in the tests).
    """
    width, height = size
    degrees %= 360
    if degrees % 180 == 0:
        return width, height
    if degrees % 90 == 0:
        return height, width
    radians = math.radians(float(degrees))
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    return max(1, round(width * cos + height * sin)), max(1, round(width * sin + height * cos))


def _extent(width: int, height: int, degrees: Fraction) -> tuple[Fraction, Fraction]:
    """The bounding box of a width×height image rotated by ``degrees``, unrounded (exact for 90°s)."""
    degrees %= 360
    if degrees % 180 == 0:
        return Fraction(width), Fraction(height)
    if degrees % 90 == 0:
        return Fraction(height), Fraction(width)
    radians = math.radians(float(degrees))
    cos, sin = abs(math.cos(radians)), abs(math.sin(radians))
    return Fraction(width * cos + height * sin), Fraction(width * sin + height * cos)


def max_size(
    width: int, height: int, limits: Limits, upscale: bool, degrees: Fraction = Fraction(0)
) -> tuple[int, int]:
    """Largest size allowed for a width×height region, aspect ratio kept (``max`` / ``^max``).

    The limits bound the output as sent, so after rotation: ``max/45`` is smaller than ``max/0``.
    """
    if not upscale and limit_exceeded(rotated_size((width, height), degrees), limits) is None:
        return width, height  # the common case, without any arithmetic
    box_w, box_h = _extent(width, height, degrees)
    scales: list[Fraction] = [] if upscale else [Fraction(1)]
    if limits.max_width:
        scales.append(limits.max_width / box_w)
    if limits.effective_height:
        scales.append(limits.effective_height / box_h)
    if limits.max_area:
        scales.append(Fraction(math.sqrt(limits.max_area / float(box_w * box_h))))
    scale = min(scales) if scales else Fraction(1)
    w, h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    # float square roots and the rotated box's rounding may overshoot by a pixel or so
    while limit_exceeded(rotated_size((w, h), degrees), limits) and (w > 1 or h > 1):
        w, h = max(1, w - 1), max(1, round_half_up(Fraction(height * (w - 1), width)))
    return w, h


def resolve_size(size: Size, w: int, h: int, limits: Limits, degrees: Fraction = Fraction(0)) -> tuple[int, int]:
    """Output size for a w×h region (3.0 §4.2); derived dimensions round half up, never below 1.

    ``max`` and a best fit beyond the limits are the largest size whose rotated output is within them.
    """
    if isinstance(size, Max):
        return max_size(w, h, limits, size.upscale, degrees)
    if isinstance(size, Width):
        return size.w, max(1, _div_half_up(h * size.w, w))
    if isinstance(size, Height):
        return max(1, _div_half_up(w * size.h, h)), size.h
    if isinstance(size, Percent):
        return max(1, round_half_up(w * size.n / 100)), max(1, round_half_up(h * size.n / 100))
    if isinstance(size, Exact):
        return size.w, size.h
    assert isinstance(size, BestFit)
    # No clamp to the region here: without ^ a best fit that would upscale is refused (400) in
    # ``resolve``, as the official validator (size_noup) and the reference implementation require.
    scale = min(Fraction(size.w, w), Fraction(size.h, h))
    fit = min(size.w, max(1, round_half_up(w * scale))), min(size.h, max(1, round_half_up(h * scale)))
    return max_size(w, h, limits, True, degrees) if limit_exceeded(rotated_size(fit, degrees), limits) else fit


def limit_exceeded(size: tuple[int, int], limits: Limits) -> str | None:
    """Which server limit ``size`` breaks, if any."""
    width, height = size
    if (limits.max_width and width > limits.max_width) or (
        limits.effective_height and height > limits.effective_height
    ):
        return "maxWidth/maxHeight"
    if limits.max_area and width * height > limits.max_area:
        return f"maxArea {limits.max_area}"
    return None


def resolve(request: ImageRequest, width: int, height: int, limits: Limits, max_pixels: int = 0) -> Resolved:
    """Region and size in pixels, checked against upscaling rules, the server's limits and the format's.

    Every limit bounds the output as sent: after rotation, and within what the format's encoder can
    write (``Format.max_side``). ``max_pixels`` (0: none) is the largest output the memory budget
    allows for this request (``budget.max_pixels``): ``max`` is capped by it; a larger explicit size
    is refused by the budget check, which names the budget.
    """
    region = resolve_region(request, width, height)
    _, _, w, h = region
    degrees = request.rotation.degrees
    fmt = request.format
    capped = limits.capped(fmt.max_side, max_pixels)
    out = resolve_size(request.size, w, h, capped, degrees)
    upscale_allowed = request.version is ApiVersion.V2 or request.size.upscale
    if not upscale_allowed and (out[0] > w or out[1] > h):
        raise SizeNotAllowed(
            f"size {out[0]}x{out[1]} is larger than the region {w}x{h}; prefix it with ^ to upscale", "size"
        )
    sent = rotated_size(out, degrees)
    rotated = f" ({sent[0]}x{sent[1]} once rotated)" if sent != out else ""
    exceeded = limit_exceeded(sent, limits)
    if exceeded:
        raise SizeNotAllowed(f"size {out[0]}x{out[1]}{rotated} exceeds {exceeded}", "size")
    if fmt.max_side and max(sent) > fmt.max_side:
        raise SizeNotAllowed(
            f"size {out[0]}x{out[1]}{rotated} exceeds the {fmt.value} encoder's {fmt.max_side} pixels a side; "
            f"ask for a smaller size or another format",
            "size",
        )
    return Resolved(region, out, max_size(w, h, capped, False, degrees))


def degraded_limits(region: Box, width: int, height: int, max_size: int, limits: Limits) -> Limits:
    """``limits``, no looser than the region at the degraded scale: what ``max`` may give (``degraded``)."""
    _, _, w, h = region
    return limits.capped(max(1, max(w, h) * max_size // max(width, height)))


def within_degraded(resolved: Resolved, width: int, height: int, max_size: int) -> bool:
    """Is the output no sharper than the whole image scaled to ``max_size`` on its long side?

    Checked on the scale, not the output's size: a full-resolution tile or a ``pct:`` region of the
    full level is small but sharp. Per axis, with ``x`` the region's extent in degraded pixels
    (side * max_size / longest): the region covers at least one (so no 1-pixel output of a tiny
    region gives a source pixel away), and the output is at most ``x`` rounded half up, or rounded
    up once ``x`` >= 4 (the edge tiles viewers ask for, IIIF's ceil). So rounding can make a tiny
    region at most a third sharper than the degraded view, never more. Rotation keeps the scale.
    """
    _, _, w, h = resolved.region
    out_w, out_h = resolved.size
    longest = max(width, height)
    for out, side in ((out_w, w), (out_h, h)):
        degraded = side * max_size  # x * longest
        if degraded < longest:
            return False
        if 2 * out * longest > 2 * degraded + longest and not (
            degraded >= 4 * longest and out * longest < degraded + longest
        ):
            return False
    return True


def plan(request: ImageRequest, resolved: Resolved, layout: Layout) -> RenderPlan:
    """Choose the level to read and the crop on it (see module docstring)."""
    x, y, w, h = resolved.region
    out_w, out_h = resolved.size
    # Integer arithmetic throughout: this runs for every tile. A level may be read if its
    # downsampling factor f is at most the request's (w / out_w and h / out_h).
    index = max(
        (i for i, lv in enumerate(layout.levels) if lv.factor * out_w <= w and lv.factor * out_h <= h),
        key=lambda i: layout.levels[i].factor,
        default=0,
    )
    level = layout.levels[index]
    f = level.factor
    left = min(_div_half_up(x, f), level.width - 1)
    top = min(_div_half_up(y, f), level.height - 1)
    right = max(left + 1, min(_div_half_up(x + w, f), level.width))
    bottom = max(top + 1, min(_div_half_up(y + h, f), level.height))
    crop = (left, top, right - left, bottom - top)
    # An axis whose exact extent at this level equals the output needs no resampling:
    # a pixel or so lost to the level's rounded-down size is padded by edge copy instead.
    hscale = Fraction(1) if w == out_w * f else Fraction(out_w, crop[2])
    vscale = Fraction(1) if h == out_h * f else Fraction(out_h, crop[3])
    return RenderPlan(
        level=index,
        crop=crop,
        scale=None if hscale == vscale == 1 else (hscale, vscale),
        size=resolved.size,
        mirror=request.rotation.mirror,
        degrees=request.rotation.degrees % 360,
        quality=request.quality,
        format=request.format,
    )


def decoded_pixels(plan: RenderPlan, layout: Layout) -> int:
    """Pixels a render decodes from the plan's level, whatever the file's layout.

    A tiled level is decoded around the crop only; an untiled one is streamed from its top
    down to the crop's bottom edge, full width, so a crop near its bottom costs the whole level.
    """
    _, top, width, height = plan.crop
    return width * height if layout.tile_width else layout.levels[plan.level].width * (top + height)


def pixel_cost(plan: RenderPlan, layout: Layout) -> int:
    """Pixels a render decodes plus pixels it produces: what makes it heavy (admission lanes)."""
    return decoded_pixels(plan, layout) + plan.size[0] * plan.size[1]


def stored_tile(plan: RenderPlan, tile_width: int, tile_height: int) -> tuple[int, int] | None:
    """(col, row) of the stored tile that *is* the response, or None.

    True when the request maps one-to-one onto a tile of the chosen level: on the
    grid, full size, no resampling, rotation or mirroring, colour kept, JPEG out.
    Such a tile can be served as stored (see ``passthrough``); never for a degraded view, whose
    renders carry a watermark that stored tiles do not have.
    """
    x, y, w, h = plan.crop
    if (
        not plan.degraded
        and plan.scale is None
        and not plan.mirror
        and plan.degrees == 0
        and plan.quality in (Quality.DEFAULT, Quality.COLOR)
        and plan.format is Format.JPG
        and tile_width > 0
        and (w, h) == plan.size == (tile_width, tile_height)
        and x % tile_width == 0
        and y % tile_height == 0
    ):
        return x // tile_width, y // tile_height
    return None


def scale_factors(width: int, height: int, tile_width: int, tile_height: int) -> list[int]:
    """Powers of two from 1 until the whole image fits one tile (info.json ``tiles``)."""
    factors = [1]
    while (math.ceil(width / factors[-1]) > tile_width or math.ceil(height / factors[-1]) > tile_height) and factors[
        -1
    ] < 2**20:
        factors.append(factors[-1] * 2)
    return factors
