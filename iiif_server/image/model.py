"""The Image API request as plain, immutable data (Image API 3.0 §4; 2.1 §4).

v2 and v3 share this model: they differ only in grammar (``parse``) and in
the info document (``info``). Pure: imports nothing of Flask or pyvips.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction


class ApiVersion(enum.Enum):
    V2 = "2"
    V3 = "3"

    @property
    def context(self) -> str:
        return f"http://iiif.io/api/image/{self.value}/context.json"

    @property
    def profile_uri(self) -> str:
        return f"http://iiif.io/api/image/{self.value}/level2.json"


# -- region (§4.1) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Full:
    pass


@dataclass(frozen=True, slots=True)
class Square:
    pass


@dataclass(frozen=True, slots=True)
class RegionPixels:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class RegionPercent:
    x: Fraction
    y: Fraction
    w: Fraction
    h: Fraction


Region = Full | Square | RegionPixels | RegionPercent


# -- size (§4.2); ``upscale`` is the ``^`` prefix -----------------------------------


@dataclass(frozen=True, slots=True)
class Max:
    upscale: bool = False


@dataclass(frozen=True, slots=True)
class Width:
    w: int
    upscale: bool = False


@dataclass(frozen=True, slots=True)
class Height:
    h: int
    upscale: bool = False


@dataclass(frozen=True, slots=True)
class Percent:
    n: Fraction
    upscale: bool = False


@dataclass(frozen=True, slots=True)
class Exact:
    """``w,h``: both dimensions given, aspect ratio may change."""

    w: int
    h: int
    upscale: bool = False


@dataclass(frozen=True, slots=True)
class BestFit:
    """``!w,h``: largest size inside the w×h box, aspect ratio kept."""

    w: int
    h: int
    upscale: bool = False


Size = Max | Width | Height | Percent | Exact | BestFit


@dataclass(frozen=True, slots=True)
class Rotation:
    degrees: Fraction
    mirror: bool = False


class Quality(enum.Enum):
    DEFAULT = "default"
    COLOR = "color"
    GRAY = "gray"
    BITONAL = "bitonal"


class Format(enum.Enum):
    JPG = "jpg"
    PNG = "png"
    WEBP = "webp"
    TIF = "tif"
    GIF = "gif"
    AVIF = "avif"

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES[self]

    @property
    def has_alpha(self) -> bool:
        return self is not Format.JPG

    @property
    def max_side(self) -> int:
        """The longest side its encoder can write (libvips 8.18, measured); 0: none below libvips' own."""
        return _MAX_SIDES[self]


#: JPEG: libjpeg's JPEG_MAX_DIMENSION; WebP: WEBP_MAX_DIMENSION; GIF: 16-bit fields; AVIF: heifsave
#: writes 16384 and says "image too large" at 16385 (libheif's limit, tested). PNG and TIFF
#: write 10^6 px sides (tested), beyond any size limit that can be configured usefully.
_MAX_SIDES = {
    Format.JPG: 65500,
    Format.PNG: 0,
    Format.WEBP: 16383,
    Format.TIF: 0,
    Format.GIF: 65535,
    Format.AVIF: 16384,
}

_MEDIA_TYPES = {
    Format.JPG: "image/jpeg",
    Format.PNG: "image/png",
    Format.WEBP: "image/webp",
    Format.TIF: "image/tiff",
    Format.GIF: "image/gif",
    Format.AVIF: "image/avif",
}


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """One parsed, syntactically valid image request; geometry is checked later against the image."""

    version: ApiVersion
    identifier: str
    region: Region
    size: Size
    rotation: Rotation
    quality: Quality
    format: Format


@dataclass(frozen=True, slots=True)
class Limits:
    """Server-imposed size limits (``maxWidth``/``maxHeight``/``maxArea``); 0 means none.

    Image API 3.0 §5.3: when only maxWidth is given, maxHeight is taken to equal it.
    """

    max_width: int = 0
    max_height: int = 0
    max_area: int = 0

    @property
    def effective_height(self) -> int:
        return self.max_height or self.max_width

    def capped(self, side: int, area: int = 0) -> Limits:
        """These limits, no looser than ``side`` per side and ``area`` (0: no cap): a format's or a budget's."""
        return Limits(
            _tighter(self.max_width, side), _tighter(self.effective_height, side), _tighter(self.max_area, area)
        )


def _tighter(limit: int, cap: int) -> int:
    """The stricter of two limits where 0 means none."""
    return min(limit, cap) if limit and cap else limit or cap
