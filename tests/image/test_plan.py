"""Pure geometry: regions, sizes under the spec's rounding, limits, and which pyramid level is read."""

from __future__ import annotations

from fractions import Fraction

import pytest

from iiif_server.errors import InvalidRequest, SizeNotAllowed
from iiif_server.image.model import ApiVersion, ImageRequest, Limits
from iiif_server.image.parse import parse_path
from iiif_server.image.plan import Layout, Level, max_size, pixel_cost, plan, resolve, scale_factors

NO_LIMITS = Limits()
# A 20000×15000 pyramid whose levels are rounded down, as libvips writes them.
PYRAMID = Layout(
    20000,
    15000,
    tuple(Level(2**i, 20000 // 2**i, 15000 // 2**i) for i in range(8)),
    256,
    256,
)


def _request(params: str, version: ApiVersion = ApiVersion.V3) -> ImageRequest:
    request = parse_path(version, f"id/{params}")
    assert isinstance(request, ImageRequest)
    return request


def _resolve(params: str, w: int = 1000, h: int = 800, limits: Limits = NO_LIMITS, v: ApiVersion = ApiVersion.V3):
    return resolve(_request(params, v), w, h, limits)


@pytest.mark.parametrize(
    ("params", "region", "size"),
    [
        ("full/max/0/default.jpg", (0, 0, 1000, 800), (1000, 800)),
        ("square/max/0/default.jpg", (100, 0, 800, 800), (800, 800)),
        ("900,700,500,500/max/0/default.jpg", (900, 700, 100, 100), (100, 100)),  # cropped at the edge
        ("pct:10,10,50,50/max/0/default.jpg", (100, 80, 500, 400), (500, 400)),
        ("pct:33.33,0,33.33,100/max/0/default.jpg", (333, 0, 333, 800), (333, 800)),
        ("full/333,/0/default.jpg", (0, 0, 1000, 800), (333, 266)),  # 266.4 -> 266
        ("full/,401/0/default.jpg", (0, 0, 1000, 800), (501, 401)),  # 501.25 -> 501
        ("full/,500/0/default.jpg", (0, 0, 1000, 800), (625, 500)),
        ("full/pct:33.3/0/default.jpg", (0, 0, 1000, 800), (333, 266)),  # 333, 266.4
        ("full/pct:0.05/0/default.jpg", (0, 0, 1000, 800), (1, 1)),  # 0.5 and 0.4: never below one pixel
        ("full/!500,500/0/default.jpg", (0, 0, 1000, 800), (500, 400)),
        ("full/!500,300/0/default.jpg", (0, 0, 1000, 800), (375, 300)),
        ("full/300,700/0/default.jpg", (0, 0, 1000, 800), (300, 700)),
        ("0,0,3,1000/1,/0/default.jpg", (0, 0, 3, 800), (1, 267)),
        ("0,0,1000,1/10,/0/default.jpg", (0, 0, 1000, 1), (10, 1)),  # 0.01 rounds up to one pixel
        ("full/^1500,/0/default.jpg", (0, 0, 1000, 800), (1500, 1200)),
        ("full/^pct:150/0/default.jpg", (0, 0, 1000, 800), (1500, 1200)),
        ("full/^!2000,3000/0/default.jpg", (0, 0, 1000, 800), (2000, 1600)),
    ],
)
def test_region_and_size(params: str, region: tuple[int, ...], size: tuple[int, int]) -> None:
    resolved = _resolve(params)
    assert resolved.region == region
    assert resolved.size == size


@pytest.mark.parametrize(
    "params",
    [
        "full/1001,/0/default.jpg",
        "full/,801/0/default.jpg",
        "full/pct:101/0/default.jpg",
        "full/1000,801/0/default.jpg",
        "full/!2000,3000/0/default.jpg",
        "10,10,50,50/51,/0/default.jpg",
    ],
)
def test_upscaling_without_caret_is_refused(params: str) -> None:
    with pytest.raises(SizeNotAllowed, match=r"\^"):
        _resolve(params)


def test_version_2_upscales_without_caret() -> None:
    assert _resolve("full/1500,/0/default.jpg", v=ApiVersion.V2).size == (1500, 1200)


@pytest.mark.parametrize("params", ["1000,0,10,10/max/0/default.jpg", "0,800,10,10/max/0/default.jpg"])
def test_region_outside_the_image(params: str) -> None:
    with pytest.raises(InvalidRequest, match="outside"):
        _resolve(params)


def test_limits_cap_max_and_refuse_larger_sizes() -> None:
    limits = Limits(max_width=400)  # maxHeight defaults to maxWidth
    assert _resolve("full/max/0/default.jpg", limits=limits).size == (400, 320)
    assert _resolve("full/^max/0/default.jpg", 100, 80, limits=limits).size == (400, 320)
    assert _resolve("full/!600,600/0/default.jpg", limits=limits).size == (400, 320)
    with pytest.raises(SizeNotAllowed, match="maxWidth"):
        _resolve("full/401,/0/default.jpg", limits=limits)
    with pytest.raises(SizeNotAllowed, match="maxWidth"):
        _resolve("0,0,300,800/,500/0/default.jpg", limits=limits)  # height 500 > inferred maxHeight 400


def test_max_area() -> None:
    limits = Limits(max_area=100_000)
    width, height = max_size(1000, 800, limits, upscale=False)
    assert width * height <= 100_000
    assert (width + 1) * round((width + 1) * 0.8) > 100_000  # as large as allowed
    assert abs(width / height - 1.25) < 0.01
    with pytest.raises(SizeNotAllowed, match="maxArea"):
        _resolve("full/500,/0/default.jpg", limits=limits)


def test_tile_maps_to_a_plain_crop_of_its_level() -> None:
    """An OpenSeadragon tile on the grid reads the matching pyramid page, no resampling."""
    for level in range(5):
        scale = 2**level
        request = _request(f"{512 * scale},{256 * scale},{256 * scale},{256 * scale}/256,/0/default.jpg")
        resolved = resolve(request, 20000, 15000, NO_LIMITS)
        chosen = plan(request, resolved, PYRAMID)
        assert chosen.level == level
        assert chosen.crop == (512, 256, 256, 256)
        assert chosen.scale is None


def test_edge_tile_on_a_rounded_down_level_is_padded_not_resampled() -> None:
    """Level 3 is 2500×1875 while IIIF's bottom edge tile needs ceil(15000/8) rows: copy the edge row."""
    request = _request("18432,14336,1568,664/196,/0/default.jpg")
    resolved = resolve(request, 20000, 15000, NO_LIMITS)
    chosen = plan(request, resolved, PYRAMID)
    assert chosen.level == 3
    assert chosen.crop == (2304, 1792, 196, 83)
    assert chosen.size == (196, 83)
    assert chosen.scale is None


def test_level_choice_never_reads_below_the_requested_resolution() -> None:
    request = _request("full/1024,/0/default.jpg")
    resolved = resolve(request, 20000, 15000, NO_LIMITS)
    chosen = plan(request, resolved, PYRAMID)
    assert PYRAMID.levels[chosen.level].factor == 16  # 1250 px wide: the smallest level >= 1024
    assert chosen.scale is not None
    assert chosen.scale[0] == Fraction(1024, 1250)


def test_scale_factors() -> None:
    assert scale_factors(20000, 15000, 256, 256) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert scale_factors(256, 100, 256, 256) == [1]
    assert scale_factors(257, 100, 256, 256) == [1, 2]


@pytest.mark.parametrize(
    ("params", "cost"),
    [
        ("0,0,256,256/256,/0/default.jpg", 2 * 256 * 256),  # one tile: its crop, its output
        ("full/1024,/0/default.jpg", 1250 * 937 + 1024 * 768),  # read at 1/16: cheap
        ("full/2500,/0/default.jpg", 2500 * 1875 + 2500 * 1875),  # read at 1/8, no resampling
        ("full/max/0/default.jpg", 20000 * 15000 * 2),  # limits off: the whole full resolution
        ("5000,5000,1000,1000/max/0/default.jpg", 2 * 1000 * 1000),
    ],
)
def test_pixel_cost_counts_what_is_decoded_and_produced(params: str, cost: int) -> None:
    request = _request(params)
    chosen = plan(request, resolve(request, 20000, 15000, NO_LIMITS), PYRAMID)
    assert pixel_cost(chosen, PYRAMID) == cost


def test_pixel_cost_of_an_untiled_source_counts_the_rows_streamed_above_the_crop() -> None:
    """An untiled level is decoded from its top down to the crop's bottom edge, full width."""
    untiled = Layout(4000, 3000, (Level(1, 4000, 3000), Level(2, 2000, 1500)))
    bottom = _request("0,2744,256,256/256,/0/default.jpg")
    top = _request("0,0,256,256/256,/0/default.jpg")
    for request, rows in ((bottom, 3000), (top, 256)):
        chosen = plan(request, resolve(request, 4000, 3000, NO_LIMITS), untiled)
        assert pixel_cost(chosen, untiled) == 4000 * rows + 256 * 256
