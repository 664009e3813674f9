"""IIIF Image API URL grammar: path -> request value, and request -> canonical path.

Parses from the right, as iipsrv does, so an identifier whose ``%2F`` was
decoded to ``/`` by the WSGI layer still resolves: the last four segments are
the parameters, the rest is the identifier. Pure: no Flask, no pyvips.

Image API 3.0 §4 (https://iiif.io/api/image/3.0/#4-image-requests) and
2.1 §4 (https://iiif.io/api/image/2.1/#image-request-parameters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import lru_cache
from typing import TypeVar

from ..errors import InvalidRequest
from .model import (
    ApiVersion,
    BestFit,
    Exact,
    Format,
    Full,
    Height,
    ImageRequest,
    Max,
    Percent,
    Quality,
    Region,
    RegionPercent,
    RegionPixels,
    Rotation,
    Size,
    Square,
    Width,
)

MAX_IDENTIFIER_LENGTH = 1024
_INT = r"[0-9]{1,9}"  # ASCII digits only: int() would also take "٠" or "０"
_DEC = r"[0-9]{1,9}(?:\.[0-9]{1,12})?|\.[0-9]{1,12}"
_REGION_PX = re.compile(rf"({_INT}),({_INT}),({_INT}),({_INT})")
_REGION_PCT = re.compile(rf"pct:({_DEC}),({_DEC}),({_DEC}),({_DEC})")
_SIZE_W = re.compile(rf"({_INT}),")
_SIZE_H = re.compile(rf",({_INT})")
_SIZE_WH = re.compile(rf"(!?)({_INT}),({_INT})")
_SIZE_PCT = re.compile(rf"pct:({_DEC})")
_ROTATION = re.compile(rf"(!?)({_DEC})")
_QUALITIES = {q.value: q for q in Quality}
_FORMATS = {f.value: f for f in Format}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class InfoRequest:
    version: ApiVersion
    identifier: str


@dataclass(frozen=True, slots=True)
class BaseUriRequest:
    """``{prefix}/{identifier}`` alone: answered with a 303 to its info.json."""

    version: ApiVersion
    identifier: str


@lru_cache(maxsize=16384)
def parse_path(version: ApiVersion, rest: str) -> ImageRequest | InfoRequest | BaseUriRequest:
    """Classify and parse the decoded path after ``/iiif/{version}/``.

    Pure, and its results immutable: memoised, since viewers ask for the same tiles again and
    again (errors are not memoised; they are raised anew).
    """
    if rest.endswith("/info.json"):
        return InfoRequest(version, check_identifier(rest[: -len("/info.json")]))
    if rest.endswith("/"):  # "{id}/": no image request ends so; the base URI, as a client meant it
        return BaseUriRequest(version, check_identifier(rest[:-1]))
    parts = rest.rsplit("/", 4)
    if len(parts) < 5:
        return BaseUriRequest(version, check_identifier(rest))
    identifier, region, size, rotation, last = parts
    quality, dot, fmt = last.rpartition(".")
    if not dot:
        raise InvalidRequest(f"missing format extension in {last!r}", "format")
    return ImageRequest(
        version=version,
        identifier=check_identifier(identifier),
        region=parse_region(region),
        size=parse_size(size, version),
        rotation=parse_rotation(rotation),
        quality=_lookup(_QUALITIES, quality, "quality"),
        format=_lookup(_FORMATS, fmt, "format"),
    )


def check_identifier(identifier: str) -> str:
    """Reject identifiers no file could have; path safety proper is the source's job."""
    if not identifier:
        raise InvalidRequest("empty identifier", "identifier")
    if len(identifier) > MAX_IDENTIFIER_LENGTH:
        raise InvalidRequest("identifier too long", "identifier")
    if "\x00" in identifier:
        raise InvalidRequest("identifier contains a NUL byte", "identifier")
    return identifier


def parse_region(text: str) -> Region:
    if text == "full":
        return Full()
    if text == "square":
        return Square()
    if m := _REGION_PX.fullmatch(text):
        x, y, w, h = (int(g) for g in m.groups())
        if w == 0 or h == 0:
            raise InvalidRequest(f"region {text!r} has zero width or height", "region")
        return RegionPixels(x, y, w, h)
    if m := _REGION_PCT.fullmatch(text):
        px, py, pw, ph = (Fraction(g) for g in m.groups())
        if pw == 0 or ph == 0:
            raise InvalidRequest(f"region {text!r} has zero width or height", "region")
        if px >= 100 or py >= 100:
            raise InvalidRequest(f"region {text!r} lies outside the image", "region")
        return RegionPercent(px, py, pw, ph)
    raise InvalidRequest(f"invalid region {text!r}", "region")


def parse_size(text: str, version: ApiVersion) -> Size:
    upscale = False
    body = text
    if version is ApiVersion.V3:
        if body.startswith("^"):
            upscale, body = True, body[1:]
        if body == "max":
            return Max(upscale)
    elif body in ("full", "max"):
        # 2.x has no ^: upscaling is allowed by default (feature sizeAboveFull).
        return Max(False)
    size = _parse_size_body(body, upscale)
    if size is None:
        raise InvalidRequest(f"invalid size {text!r}", "size")
    return size


def _parse_size_body(body: str, upscale: bool) -> Size | None:
    size: Size
    if m := _SIZE_W.fullmatch(body):
        size = Width(int(m[1]), upscale)
    elif m := _SIZE_H.fullmatch(body):
        size = Height(int(m[1]), upscale)
    elif m := _SIZE_PCT.fullmatch(body):
        size = Percent(Fraction(m[1]), upscale)
    elif m := _SIZE_WH.fullmatch(body):
        w, h = int(m[2]), int(m[3])
        size = BestFit(w, h, upscale) if m[1] else Exact(w, h, upscale)
    else:
        return None
    if any(getattr(size, field, 1) == 0 for field in ("w", "h", "n")):
        raise InvalidRequest(f"size {body!r} is zero", "size")
    return size


def parse_rotation(text: str) -> Rotation:
    m = _ROTATION.fullmatch(text)
    if not m:
        raise InvalidRequest(f"invalid rotation {text!r}", "rotation")
    degrees = Fraction(m[2])
    if degrees > 360:
        raise InvalidRequest(f"rotation {text!r} is outside 0-360", "rotation")
    return Rotation(degrees, bool(m[1]))


def _lookup(table: dict[str, _T], text: str, parameter: str) -> _T:
    try:
        return table[text]
    except KeyError:
        raise InvalidRequest(f"unsupported {parameter} {text!r}", parameter) from None


# -- canonical form (3.0 §4.8; 2.1 §4.7) ----------------------------------------------


def format_number(value: Fraction) -> str:
    """Integers as integers, else the exact decimal without trailing zeros (3.0 §4.7).

    Values come from decimal text, so the decimal expansion is finite; rounding it would make
    the canonical URL name a different image.
    """
    if value.denominator == 1:
        return str(value.numerator)
    with localcontext() as context:
        context.prec = 40
        exact = Decimal(value.numerator) / Decimal(value.denominator)
    return format(exact, "f").rstrip("0").rstrip(".")


def canonical_params(
    request: ImageRequest,
    region: tuple[int, int, int, int],
    size: tuple[int, int],
    image_size: tuple[int, int],
    max_size: tuple[int, int],
) -> str:
    """``region/size/rotation/quality.format`` in canonical form.

    ``max_size`` is what ``max`` resolves to for this region; a size equal to it is
    written ``max`` (3.0) or ``full``/``max`` (2.1).
    """
    x, y, w, h = region
    region_text = "full" if region == (0, 0, *image_size) else f"{x},{y},{w},{h}"
    width, height = size
    upscaled = width > w or height > h
    if request.version is ApiVersion.V3:
        if size == max_size and not upscaled:
            size_text = "max"
        elif upscaled and isinstance(request.size, Max):
            size_text = "^max"
        else:
            size_text = f"{'^' if upscaled else ''}{width},{height}"
    elif size == (w, h):
        size_text = "full"
    elif isinstance(request.size, Exact) and request.size.w * h != request.size.h * w:
        size_text = f"{width},{height}"  # 2.1: w,h only where the aspect ratio changes
    else:
        size_text = f"{width},"
    mirror = "!" if request.rotation.mirror else ""
    rotation_text = mirror + format_number(request.rotation.degrees)
    return f"{region_text}/{size_text}/{rotation_text}/{request.quality.value}.{request.format.value}"
