"""The URL grammar: what parses, into what, and what is refused (Image API 3.0 §4, 2.1 §4)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from iiif_server.errors import InvalidRequest
from iiif_server.image.model import (
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
    RegionPercent,
    RegionPixels,
    Rotation,
    Square,
    Width,
)
from iiif_server.image.parse import BaseUriRequest, InfoRequest, canonical_params, format_number, parse_path

V2, V3 = ApiVersion.V2, ApiVersion.V3


def test_image_request_fields() -> None:
    request = parse_path(V3, "abc/10,20,30,40/^!200,100/!22.5/gray.png")
    assert request == ImageRequest(
        V3,
        "abc",
        RegionPixels(10, 20, 30, 40),
        BestFit(200, 100, True),
        Rotation(Fraction("22.5"), True),
        Quality.GRAY,
        Format.PNG,
    )


def test_identifier_with_decoded_slashes_parses_from_the_right() -> None:
    request = parse_path(V3, "hien-vat/a b/KH.tif/full/max/0/default.jpg")
    assert isinstance(request, ImageRequest)
    assert request.identifier == "hien-vat/a b/KH.tif"


def test_info_and_base_uri() -> None:
    assert parse_path(V3, "a/b.tif/info.json") == InfoRequest(V3, "a/b.tif")
    assert parse_path(V2, "a.tif") == BaseUriRequest(V2, "a.tif")


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("full", Full()),
        ("square", Square()),
        ("0,0,1,1", RegionPixels(0, 0, 1, 1)),
        ("pct:41.6,7.5,40,70", RegionPercent(Fraction("41.6"), Fraction("7.5"), Fraction(40), Fraction(70))),
        ("pct:0,0,100,100", RegionPercent(Fraction(0), Fraction(0), Fraction(100), Fraction(100))),
    ],
)
def test_regions(text: str, region: object) -> None:
    request = parse_path(V3, f"id/{text}/max/0/default.jpg")
    assert isinstance(request, ImageRequest) and request.region == region


@pytest.mark.parametrize(
    ("version", "text", "size"),
    [
        (V3, "max", Max()),
        (V3, "^max", Max(True)),
        (V3, "150,", Width(150)),
        (V3, "^360,", Width(360, True)),
        (V3, ",150", Height(150)),
        (V3, "^,240", Height(240, True)),
        (V3, "pct:50", Percent(Fraction(50))),
        (V3, "^pct:120", Percent(Fraction(120), True)),
        (V3, "225,100", Exact(225, 100)),
        (V3, "^360,360", Exact(360, 360, True)),
        (V3, "!225,100", BestFit(225, 100)),
        (V3, "^!360,360", BestFit(360, 360, True)),
        (V2, "full", Max()),
        (V2, "max", Max()),
        (V2, "150,", Width(150)),
        (V2, "!225,100", BestFit(225, 100)),
    ],
)
def test_sizes(version: ApiVersion, text: str, size: object) -> None:
    request = parse_path(version, f"id/full/{text}/0/default.jpg")
    assert isinstance(request, ImageRequest) and request.size == size


@pytest.mark.parametrize(
    "path",
    [
        "id/full/full/0/default.jpg",  # 3.0 has no `full` size
        "id/full/max/0/default.jp2",  # unsupported format
        "id/full/max/0/default.pdf",
        "id/full/max/0/native.jpg",  # 1.x quality
        "id/full/max/0/default",  # no format
        "id/full/max/361/default.jpg",
        "id/full/max/-90/default.jpg",
        "id/full/max/+90/default.jpg",
        "id/full/max/9O/default.jpg",
        "id/0,0,0,10/max/0/default.jpg",
        "id/pct:0,0,0,10/max/0/default.jpg",
        "id/pct:100,0,10,10/max/0/default.jpg",
        "id/1,2,3/max/0/default.jpg",
        "id/-1,0,10,10/max/0/default.jpg",
        "id/full/0,/0/default.jpg",
        "id/full/,0/0/default.jpg",
        "id/full/pct:0/0/default.jpg",
        "id/full/^^max/0/default.jpg",
        "id/full/!10,/0/default.jpg",
        "id/full/10,10,/0/default.jpg",
        "id/full/ 10,/0/default.jpg",
        "id/squares/max/0/default.jpg",
        "id/full/1234567890,/0/default.jpg",  # absurdly long numbers
        "/full/max/0/default.jpg",  # empty identifier
        "a\x00b/full/max/0/default.jpg",
        "a\x00b/info.json",
    ],
)
def test_malformed_is_invalid_request(path: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_path(V3, path)


def test_upscaling_prefix_is_not_2x_syntax() -> None:
    with pytest.raises(InvalidRequest):
        parse_path(V2, "id/full/^max/0/default.jpg")


def test_error_messages_are_one_line_and_name_the_value() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_path(V3, "id/full/max/0/default.bmp")
    assert "bmp" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("value", "text"), [("90", "90"), ("22.5", "22.5"), ("0.50", "0.5"), ("360", "360")])
def test_numbers_in_canonical_form(value: str, text: str) -> None:
    assert format_number(Fraction(value)) == text


def _canonical(
    version: ApiVersion,
    params: str,
    region: tuple[int, int, int, int],
    size: tuple[int, int],
    image: tuple[int, int] = (1000, 800),
    max_size: tuple[int, int] | None = None,
) -> str:
    request = parse_path(version, f"id/{params}")
    assert isinstance(request, ImageRequest)
    return canonical_params(request, region, size, image, max_size or region[2:])  # type: ignore[arg-type]


def test_canonical_v3() -> None:
    assert _canonical(V3, "full/max/0/default.jpg", (0, 0, 1000, 800), (1000, 800)) == "full/max/0/default.jpg"
    assert _canonical(V3, "pct:0,0,100,100/1000,/0/color.png", (0, 0, 1000, 800), (1000, 800)) == (
        "full/max/0/color.png"
    )
    assert _canonical(V3, "0,0,500,400/250,/!90/gray.jpg", (0, 0, 500, 400), (250, 200)) == (
        "0,0,500,400/250,200/!90/gray.jpg"
    )
    assert _canonical(V3, "full/^2000,/0/default.jpg", (0, 0, 1000, 800), (2000, 1600)) == (
        "full/^2000,1600/0/default.jpg"
    )
    assert _canonical(V3, "full/^max/0/default.jpg", (0, 0, 1000, 800), (2000, 1600), max_size=(1000, 800)) == (
        "full/^max/0/default.jpg"
    )


def test_canonical_v2() -> None:
    assert _canonical(V2, "full/full/0/default.jpg", (0, 0, 1000, 800), (1000, 800)) == "full/full/0/default.jpg"
    assert _canonical(V2, "full/!500,500/0/default.jpg", (0, 0, 1000, 800), (500, 400)) == "full/500,/0/default.jpg"
    assert _canonical(V2, "full/500,100/0/default.jpg", (0, 0, 1000, 800), (500, 100)) == "full/500,100/0/default.jpg"
    assert _canonical(V2, "full/500,400/0/default.jpg", (0, 0, 1000, 800), (500, 400)) == "full/500,/0/default.jpg"
