"""The preview tier as an image of its own (image/tier.py): its size, and its requests translated onto
the master so that every tile its info.json invites renders exactly its declared size, inside the
master, within the degraded view, and adjacent tiles share their edges."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from iiif_server.errors import InvalidRequest, SizeNotAllowed
from iiif_server.image.info import build_info
from iiif_server.image.model import ApiVersion, Exact, Full, Limits, RegionPixels, Square
from iiif_server.image.parse import parse_path
from iiif_server.image.plan import Box, Layout, Level, max_size, resolve, within_degraded
from iiif_server.image.tier import master_box, tier_layout, tier_size, to_master

#: (master width, height, degraded size): F = 2.4 (the tests' stele), F < 2, F = 1 (master within the
#: degraded size), portrait, a thin strip, tier sides one pixel past a tile, F an odd fraction.
CASES = [
    (2400, 1800, 1000),
    (1100, 900, 1000),
    (800, 600, 1000),
    (1800, 2400, 1000),
    (5000, 37, 1000),
    (1200, 1025, 1025),
    (7777, 5131, 1025),
    (3001, 2000, 257),
]


def _layout(width: int, height: int) -> Layout:
    return Layout(width, height, (Level(1, width, height),), 256, 256)


def _tiles(info: dict[str, object]) -> Iterator[tuple[int, int, int, int, int, int, int]]:
    """Every tile the document invites, as OpenSeadragon asks it: (x, y, w, h, out_w, out_h, factor)."""
    width, height = info["width"], info["height"]
    assert isinstance(width, int) and isinstance(height, int)
    for tiles in info["tiles"]:  # type: ignore[attr-defined]
        for factor in tiles["scaleFactors"]:
            side_w, side_h = tiles["width"] * factor, tiles["height"] * factor
            for y in range(0, height, side_h):
                for x in range(0, width, side_w):
                    w, h = min(side_w, width - x), min(side_h, height - y)
                    yield x, y, w, h, math.ceil(w / factor), math.ceil(h / factor), factor


def _master_check(path: str, master: tuple[int, int], degraded: int) -> tuple[Box, tuple[int, int]]:
    """The master request's region and size, checked as the degraded path checks it."""
    request = parse_path(ApiVersion.V3, path)
    translated = to_master(request, "x", master, degraded, Limits())
    resolved = resolve(translated.master, *master, Limits())
    assert within_degraded(resolved, *master, degraded), (path, resolved)
    assert resolved.size == translated.resolved.size  # exactly what the request means at the tier
    return resolved.region, resolved.size


@pytest.mark.parametrize(("width", "height", "degraded"), CASES)
def test_the_tier_is_the_degraded_max_with_scale_factors_from_1(width: int, height: int, degraded: int) -> None:
    tier = tier_size(width, height, degraded)
    assert tier == max_size(width, height, Limits(degraded), False)  # what the degraded full/max gives
    assert max(tier) == min(degraded, max(width, height))
    info = build_info(ApiVersion.V3, "u", tier_layout(_layout(width, height), degraded), Limits(), 512, upscaling=False)
    assert (info["width"], info["height"]) == tier
    assert info["tiles"][0]["scaleFactors"][0] == 1
    assert all(max(s["width"], s["height"]) <= max(tier) for s in info["sizes"])
    assert "sizeUpscaling" not in info["extraFeatures"]
    v2 = build_info(ApiVersion.V2, "u", tier_layout(_layout(width, height), degraded), Limits(), 512, upscaling=False)
    assert "sizeAboveFull" not in v2["profile"][1]["supports"]


@pytest.mark.parametrize(("width", "height", "degraded"), CASES)
def test_every_invited_tile_renders_its_size_inside_the_master_and_tiles_abut(
    width: int, height: int, degraded: int
) -> None:
    master = (width, height)
    info = build_info(ApiVersion.V3, "u", tier_layout(_layout(width, height), degraded), Limits(), 512, upscaling=False)
    rows: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}  # (factor, y) -> master boxes
    for x, y, w, h, out_w, out_h, factor in _tiles(info):
        region, out = _master_check(f"x~preview/{x},{y},{w},{h}/{out_w},{out_h}/0/default.jpg", master, degraded)
        assert out == (out_w, out_h)  # OpenSeadragon's 3.0 form
        assert _master_check(f"x~preview/{x},{y},{w},{h}/{out_w},/0/default.jpg", master, degraded)[0] == region
        mx, my, mw, mh = region
        assert mx >= 0 and my >= 0 and mw >= 1 and mh >= 1 and mx + mw <= width and my + mh <= height
        rows.setdefault((factor, y), []).append(region)
    for factor in info["tiles"][0]["scaleFactors"]:
        columns = [boxes for (f, _), boxes in sorted(rows.items()) if f == factor]
        assert columns[0][0][1] == 0 and sum(boxes[0][3] for boxes in columns) == height  # rows abut, cover H
        for boxes in columns:
            assert boxes[0][0] == 0 and sum(box[2] for box in boxes) == width  # columns abut, cover W
            assert all(a[0] + a[2] == b[0] for a, b in itertools.pairwise(boxes))
        assert all(a[0][1] + a[0][3] == b[0][1] for a, b in itertools.pairwise(columns))


@pytest.mark.parametrize(("width", "height", "degraded"), CASES)
def test_full_max_and_every_listed_size_of_the_tier(width: int, height: int, degraded: int) -> None:
    master, tier = (width, height), tier_size(width, height, degraded)
    assert _master_check("x~preview/full/max/0/default.jpg", master, degraded) == ((0, 0, width, height), tier)
    info = build_info(ApiVersion.V3, "u", tier_layout(_layout(width, height), degraded), Limits(), 512, upscaling=False)
    for size in info["sizes"]:
        _, out = _master_check(f"x~preview/full/{size['width']},{size['height']}/0/default.jpg", master, degraded)
        assert out == (size["width"], size["height"])


def test_regions_sizes_and_canonical_forms_are_in_tier_pixels() -> None:
    master = (2400, 1800)  # tier 1000 x 750, F = 2.4

    def translate(params: str, version: ApiVersion = ApiVersion.V3):  # type: ignore[no-untyped-def]
        return to_master(parse_path(version, f"x~preview/{params}"), "x", master, 1000, Limits())

    tile = translate("768,512,256,256/max/0/default.jpg")
    assert tile.canonical == "768,512,232,238/max/0/default.jpg"  # clipped to the tier, as for any image
    assert tile.master.region == RegionPixels(1843, 1228, 557, 572)  # floor(768 * 2.4); the far edges: W, H
    assert translate("full/max/0/default.jpg").master.region == Full()
    square = translate("square/max/90/gray.png")
    assert square.master.region == Square() and square.resolved.size == (750, 750)
    assert square.canonical == "125,0,750,750/max/90/gray.png"
    half = translate("pct:50,0,50,100/,375/0/default.webp")
    assert master_box(half.resolved.region, (1000, 750), master) == (1200, 0, 1200, 1800)
    assert half.resolved.size == (250, 375) and half.master.size == Exact(250, 375)
    assert translate("full/!500,500/0/default.jpg").resolved.size == (500, 375)
    assert translate("full/^max/0/default.jpg").resolved.size == (1000, 750)  # ^max: capped at the tier's side
    assert translate("full/max/45/default.jpg").resolved.size == (808, 606)  # its bounding box within 1000
    assert translate("full/pct:10/0/default.jpg").canonical == "full/100,75/0/default.jpg"
    assert translate("full/full/0/default.jpg", ApiVersion.V2).canonical == "full/full/0/default.jpg"
    assert (
        translate("0,0,10,10/5,/!45/default.jpg").master.rotation
        == parse_path(ApiVersion.V3, "x/full/max/!45/default.jpg").rotation
    )


@pytest.mark.parametrize(
    ("version", "params"),
    [
        (ApiVersion.V3, "full/1001,/0/default.jpg"),  # wider than the tier
        (ApiVersion.V3, "0,0,10,10/^max/0/default.jpg"),  # up to the tier's side: an upscale
        (ApiVersion.V3, "full/^1200,/0/default.jpg"),
        (ApiVersion.V3, "0,0,10,10/^100,/0/default.jpg"),
        (ApiVersion.V3, "full/^pct:101/0/default.jpg"),
        (ApiVersion.V3, "full/1000,751/0/default.jpg"),
        (ApiVersion.V2, "full/1001,/0/default.jpg"),  # 2.1 upscales unasked elsewhere; not the tier
        (ApiVersion.V2, "0,0,10,10/100,/0/default.jpg"),
        (ApiVersion.V2, "full/pct:101/0/default.jpg"),
    ],
)
def test_nothing_sharper_than_the_tier_is_reachable(version: ApiVersion, params: str) -> None:
    with pytest.raises(SizeNotAllowed):
        to_master(parse_path(version, f"x~preview/{params}"), "x", (2400, 1800), 1000, Limits())


def test_a_region_outside_the_tier_is_400_even_if_inside_the_master() -> None:
    with pytest.raises(InvalidRequest, match="outside"):
        request = parse_path(ApiVersion.V3, "x~preview/1200,0,100,100/max/0/default.jpg")
        to_master(request, "x", (2400, 1800), 1000, Limits())


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 9000), st.integers(2, 9000), st.integers(64, 3000), st.booleans(), st.data())
def test_any_tier_region_at_tier_scale_stays_within_the_degraded_view(
    width: int, height: int, degraded: int, far_edge: bool, data: st.DataObject
) -> None:
    """What the safety net lets through at tier scale: any region of 5 tier pixels a side or more, and any
    region touching the tier's far edges (mapped to the master's exactly: never less than F pixels).
    Smaller regions inside the tier may be refused (401) when rounding would make them sharper."""
    master = (width, height)
    assume(min(master) * degraded >= max(master))  # else no degraded view of it at all (a side < F pixels)
    tw, th = tier_size(width, height, degraded)
    w = data.draw(st.integers(1 if far_edge else min(5, tw), tw))
    h = data.draw(st.integers(1 if far_edge else min(5, th), th))
    x = tw - w if far_edge else data.draw(st.integers(0, tw - w))
    y = th - h if far_edge else data.draw(st.integers(0, th - h))
    region, out = _master_check(f"x~preview/{x},{y},{w},{h}/max/0/default.png", master, degraded)
    assert out == (w, h) and region[0] + region[2] <= width and region[1] + region[3] <= height
