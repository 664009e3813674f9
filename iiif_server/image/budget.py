"""What one request may cost, known from its plan and checked before any pixel is decoded. Pure.

Two budgets, both per request:

- **decoded pixels** (``max_decode_pixels``): a render decodes the plan's crop of the level it
  reads (``plan.decoded_pixels``). On a pyramid that is at most about four times the output; a
  file without smaller levels (a 60000² tiled TIFF of one level) decodes its whole region at full
  resolution for any output size, so ``full/1000,`` would cost 3.6 gigapixels;
- **peak memory** (``max_request_mb``): libvips streams a render strip by strip, but some steps
  hold the whole output: encoders (GIF quantisation, WebP's and AVIF's picture, PNG and TIFF write to a
  buffer, which Python then copies), the in-memory copy a rotated or mirrored untiled source
  needs (``render._apply``), a whole level the renderer decodes to keep (``Renderer._level``).
  ``peak_bytes`` is a fixed allowance, the kept level if any, plus bytes per output pixel after
  rotation; the coefficients are measured peaks of single renders, rounded up (see
  docs/operations.md, "Request budgets"; tests/image/test_budget.py checks they bound real use).

``max_pixels`` turns the memory budget into an output area for ``plan.resolve``, so ``max``
is capped by it and never refused; an explicit size beyond it is refused by ``check``.
Refusals are ``OverBudget`` (400): the file is healthy and a smaller request is served, as for
``maxArea``; 422 stays for files that cannot be decoded (and are logged as broken).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OverBudget
from .model import Format, ImageRequest
from .plan import Layout, RenderPlan, decoded_pixels, rotated_size

MB = 2**20
#: What any render holds besides its output: libvips' thread buffers and tile caches, a kept level.
FIXED_BYTES = 24 * MB
#: Per encoder: bytes it holds whatever the size, and peak bytes per output pixel (after rotation).
#: Measured on noisy content: GIF ~40 MB + 11-13 (libimagequant's histogram grows with colours),
#: WebP 8.5, PNG 3.4, TIFF 2.8, JPEG 0.7, AVIF 21-23 (41 with alpha: libheif encodes it as a second
#: picture); rounded up for alpha and less compressible content.
ENCODERS = {
    Format.JPG: (0, 2),
    Format.PNG: (0, 8),
    Format.WEBP: (0, 12),
    Format.TIF: (0, 8),
    Format.GIF: (32 * MB, 16),
    Format.AVIF: (0, 44),
}
#: An untiled source rotated or mirrored is copied to memory first (RGBA at most).
MATERIALISED_BYTES = 4


@dataclass(frozen=True, slots=True)
class Budget:
    """Per-request limits beyond the Image API's: 0 means none."""

    max_bytes: int = 0
    max_decode_pixels: int = 0
    kept_level_bytes: int = 0  # the largest level the renderer decodes whole and keeps (``Renderer._level``)


def _cost(fmt: Format, materialised: bool) -> tuple[int, int]:
    """Fixed bytes and bytes per output pixel of a render in ``fmt``."""
    fixed, per_pixel = ENCODERS[fmt]
    return FIXED_BYTES + fixed, per_pixel + (MATERIALISED_BYTES if materialised else 0)


def _materialised(tiled: bool, degrees: object, mirror: bool) -> bool:
    """Whether ``render._apply`` copies the output to memory before rotating (streamed sources)."""
    return not tiled and (bool(degrees) or mirror)


def peak_bytes(plan: RenderPlan, layout: Layout, budget: Budget) -> int:
    """Estimated peak memory of rendering ``plan``: an upper bound, within a small factor."""
    width, height = rotated_size(plan.size, plan.degrees)
    fixed, per_pixel = _cost(plan.format, _materialised(bool(layout.tile_width), plan.degrees, plan.mirror))
    level = layout.levels[plan.level]
    _, _, crop_width, crop_height = plan.crop
    whole_view = 2 * crop_width * crop_height >= level.width * level.height  # the renderer may keep it decoded
    kept = min(MATERIALISED_BYTES * level.width * level.height, budget.kept_level_bytes) if whole_view else 0
    return fixed + kept + width * height * per_pixel


def max_pixels(budget: Budget, request: ImageRequest, layout: Layout) -> int:
    """The largest output (after rotation) the memory budget allows for this request; 0: no cap."""
    if not budget.max_bytes:
        return 0
    rotation = request.rotation
    fixed, per_pixel = _cost(
        request.format, _materialised(bool(layout.tile_width), rotation.degrees % 360, rotation.mirror)
    )
    return max(1, (budget.max_bytes - fixed - budget.kept_level_bytes) // per_pixel)


def check(plan: RenderPlan, layout: Layout, budget: Budget) -> None:
    """Refuse (``OverBudget``) a plan beyond either budget, naming the limit and what to ask instead."""
    decoded = decoded_pixels(plan, layout)
    if budget.max_decode_pixels and decoded > budget.max_decode_pixels:
        advice = (
            "the image has no smaller level; ask for a smaller region or ingest it as a pyramid"
            if plan.level == len(layout.levels) - 1
            else "ask for a smaller region or size"
        )
        raise OverBudget(
            f"this view would decode {decoded} pixels from the best available level "
            f"(limit {budget.max_decode_pixels}): {advice}",
            "region",
        )
    needed = peak_bytes(plan, layout, budget)
    if budget.max_bytes and needed > budget.max_bytes:
        width, height = rotated_size(plan.size, plan.degrees)
        fmt = plan.format.value
        raise OverBudget(
            f"a {width}x{height} {fmt} would need about {needed // MB} MB to render "
            f"(limit {budget.max_bytes // MB} MB per request); ask for a smaller size or jpg",
            "size",
        )
