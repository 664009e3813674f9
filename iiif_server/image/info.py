"""Image information documents (info.json) for Image API 3.0 §5 and 2.1 §5. Pure.

``tiles`` follow the source's own tile size when it has one, so viewers ask for
exactly the stored tiles; ``sizes`` lists the cheap pyramid sizes within limits, and
within what every advertised format can encode (``Format.max_side``: WebP's 16383), so any
listed size can be asked for in any format.

The preview tier of a restricted image is described as an image of its own at the degraded size
(image/tier.py ``tier_layout``: scale factors from 1, so a viewer's top level is the tier's full size);
it never upscales (``upscaling=False``), so it lists neither ``sizeUpscaling`` nor ``sizeAboveFull``.

``services``: the authorization services of a restricted image (access/describe.py), embedded as
each API generation says (``describe.embedded``): in 3.0 the auth 2 context comes first in the
document's ``@context`` list (Auth 2.0 §2.1), in 2.1 each service carries its own.
"""

from __future__ import annotations

import math
from typing import Any

from ..access.describe import embedded
from ..access.endpoints import AUTH2_CONTEXT
from .model import ApiVersion, Format, Limits
from .plan import Layout, scale_factors

FORMATS_V3_EXTRA = ["webp", "tif", "gif", "avif"]  # level 2 already promises jpg and png
QUALITIES = ["color", "gray", "bitonal"]
#: The longest side every advertised format can encode (all of ``Format`` are advertised).
EVERY_FORMAT_SIDE = min(fmt.max_side for fmt in Format if fmt.max_side)
_FEATURES = [
    "baseUriRedirect",
    "canonicalLinkHeader",
    "cors",
    "jsonldMediaType",
    "mirroring",
    "profileLinkHeader",
    "regionByPct",
    "regionByPx",
    "regionSquare",
    "rotationArbitrary",
    "rotationBy90s",
    "sizeByConfinedWh",
    "sizeByH",
    "sizeByPct",
    "sizeByW",
    "sizeByWh",
]
# 3.0 names upscaling with ^ "sizeUpscaling"; 2.1 upscales without asking ("sizeAboveFull")
# and names distorted sizes twice (2.0 "sizeByForcedWh", 2.1 "sizeByDistortedWh").
FEATURES_V3 = sorted([*_FEATURES, "sizeUpscaling"])
FEATURES_V2 = sorted([*_FEATURES, "sizeAboveFull", "sizeByDistortedWh", "sizeByForcedWh"])
_NO_UPSCALING_V3 = [name for name in FEATURES_V3 if name != "sizeUpscaling"]
_NO_UPSCALING_V2 = [name for name in FEATURES_V2 if name != "sizeAboveFull"]


def build_info(
    version: ApiVersion,
    service_id: str,
    layout: Layout,
    limits: Limits,
    default_tile_size: int,
    preferred_formats: tuple[str, ...] = (),
    upscaling: bool = True,
    services: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The info.json document for one image, as a JSON-ready dict; ``upscaling``: see the module docstring."""
    tile_w = layout.tile_width or default_tile_size
    tile_h = layout.tile_height or default_tile_size
    factors = scale_factors(layout.width, layout.height, tile_w, tile_h)
    sizes = _sizes(layout, factors, limits)
    tiles = [{"width": tile_w, "height": tile_h, "scaleFactors": factors}] if factors else []
    bounds = {
        key: value
        for key, value in (
            ("maxWidth", limits.max_width),
            ("maxHeight", limits.max_height),
            ("maxArea", limits.max_area),
        )
        if value
    }
    if version is ApiVersion.V3:
        info: dict[str, Any] = {
            "@context": [AUTH2_CONTEXT, version.context] if services else version.context,
            "id": service_id,
            "type": "ImageService3",
            "protocol": "http://iiif.io/api/image",
            "profile": "level2",
            "width": layout.width,
            "height": layout.height,
            **bounds,
            "sizes": sizes,
            **({"tiles": tiles} if tiles else {}),
            "extraFormats": FORMATS_V3_EXTRA,
            "extraQualities": QUALITIES,
            "extraFeatures": FEATURES_V3 if upscaling else _NO_UPSCALING_V3,
        }
        if preferred_formats:
            info["preferredFormats"] = list(preferred_formats)
        if services:
            info["service"] = embedded(services, version3=True)
        return info
    info = {
        "@context": version.context,
        "@id": service_id,
        "protocol": "http://iiif.io/api/image",
        "width": layout.width,
        "height": layout.height,
        "sizes": sizes,
        **({"tiles": tiles} if tiles else {}),
        "profile": [
            version.profile_uri,
            {
                "formats": ["jpg", "png", *FORMATS_V3_EXTRA],
                "qualities": ["default", *QUALITIES],
                "supports": FEATURES_V2 if upscaling else _NO_UPSCALING_V2,
                **bounds,
            },
        ],
    }
    if services:
        info["service"] = embedded(services, version3=False)
    return info


def _sizes(layout: Layout, factors: list[int], limits: Limits) -> list[dict[str, int]]:
    sizes = []
    for factor in reversed(factors):
        w, h = math.ceil(layout.width / factor), math.ceil(layout.height / factor)
        if max(w, h) > EVERY_FORMAT_SIDE:
            continue
        if (limits.max_width and w > limits.max_width) or (limits.effective_height and h > limits.effective_height):
            continue
        if limits.max_area and w * h > limits.max_area:
            continue
        sizes.append({"width": w, "height": h})
    return sizes
