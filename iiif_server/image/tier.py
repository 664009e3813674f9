"""The preview tier (``<identifier>~preview``) as an image of its own, at the degraded size. Pure.

Viewers take an info.json's ``width``/``height`` and tile scale factors as the image's full
resolution (OpenSeadragon ignores ``maxWidth``), so a tier that kept the master's size would invite
requests it refuses. The tier is therefore the whole image scaled to ``[access] degraded_size`` on
its long side (``tier_size``: the rounding of the degraded ``max``), described with scale factors
from 1, and its image requests are in *tier* pixels. ``to_master`` translates one, once, at the
tier's entrance, into the request on the master that the degraded path renders (watermark, never
pass-through, private, its checks a second safety net):

- ``full`` and ``square`` mean the same in both; a pixel or ``pct:`` region is taken in tier pixels
  and its edges mapped by F = master long side / tier long side, rounded down, the tier's far edges
  to the master's: adjacent regions share their edges (no gap, no overlap), the last row and column
  keep the master pixels that fall short of a whole tier pixel, and a region one tier pixel wide at
  the edge still spans at least F master pixels.
- the size is resolved against the region in tier pixels and the server's limits capped at the
  tier's long side (``tier_limits``, what its info.json states), as for any image, and handed to the
  master as an exact ``w,h``: the tier renders exactly the size it declares.
- the tier never upscales (it is never sharper than itself): an output larger than its region in
  tier pixels is 400, ``^`` or not, in 3.0 and 2.1 alike; its info.json lists no upscaling feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

from ..errors import SizeNotAllowed
from .model import Exact, Full, ImageRequest, Limits, RegionPixels, Square
from .parse import canonical_params
from .plan import Box, Layout, Level, Resolved, max_size, resolve


@dataclass(frozen=True, slots=True)
class Translated:
    """A tier request and what it becomes on the master."""

    master: ImageRequest  # the master's identifier; region in master pixels (or full/square); size exact
    resolved: Resolved  # the request in tier pixels
    canonical: str  # region/size/rotation/quality.format in tier coordinates (its Link canonical)


def tier_size(width: int, height: int, degraded: int) -> tuple[int, int]:
    """The tier's ``width``/``height``: the master's degraded ``max`` (``plan.max_size``, rounded down)."""
    return max_size(width, height, Limits().capped(degraded), False)


def tier_limits(limits: Limits, tier: tuple[int, int]) -> Limits:
    """The server's limits, no looser than the tier's long side: what its info.json states and its
    requests are held to (after rotation, as everywhere: the degraded ``max`` is capped the same way)."""
    return limits.capped(max(tier))


def tier_layout(layout: Layout, degraded: int) -> Layout:
    """The tier as info.json describes it: one level at the tier size, the master's tile size."""
    width, height = tier_size(layout.width, layout.height, degraded)
    return Layout(width, height, (Level(1, width, height),), layout.tile_width, layout.tile_height)


def master_box(box: Box, tier: tuple[int, int], master: tuple[int, int]) -> Box:
    """A region in tier pixels as master pixels: each edge by itself, so adjacent regions abut."""
    scale = Fraction(max(master), max(tier))

    def edge(at: int, tier_side: int, master_side: int) -> int:
        return master_side if at >= tier_side else min(math.floor(at * scale), master_side)

    x, y, w, h = box
    left, top = edge(x, tier[0], master[0]), edge(y, tier[1], master[1])
    return left, top, edge(x + w, tier[0], master[0]) - left, edge(y + h, tier[1], master[1]) - top


def to_master(
    request: ImageRequest, identifier: str, master: tuple[int, int], degraded: int, limits: Limits, max_pixels: int = 0
) -> Translated:
    """``request`` at the tier of a ``master``-sized image as the request on the master ``identifier``.

    Raises what ``plan.resolve`` raises for the tier's geometry, and ``SizeNotAllowed`` for an upscale.
    """
    tier = tier_size(*master, degraded)
    resolved = resolve(request, *tier, tier_limits(limits, tier), max_pixels)
    _, _, w, h = resolved.region
    out_w, out_h = resolved.size
    if out_w > w or out_h > h:
        raise SizeNotAllowed(
            f"the preview is {tier[0]}x{tier[1]} pixels and is not upscaled: "
            f"size {out_w}x{out_h} is larger than the region {w}x{h}",
            "size",
        )
    region = request.region
    if not isinstance(region, Full | Square):
        region = RegionPixels(*master_box(resolved.region, tier, master))
    translated = replace(request, identifier=identifier, region=region, size=Exact(out_w, out_h))
    canonical = canonical_params(request, resolved.region, resolved.size, tier, resolved.max_size)
    return Translated(translated, resolved, canonical)
