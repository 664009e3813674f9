"""Pixel-level checks of rendered images: the right source pixels end up in the right output places.

Every assertion is on decoded pixels, dimensions or headers. Expected values come from the test
pattern itself (``block_colour``/``make_pattern``) and from the spec's arithmetic done here with
``Fraction`` (round half up), never from the server's own functions.
"""

from __future__ import annotations

import array
import math
import unicodedata
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import quote

import pytest
import pyvips
from flask import Flask
from flask.testing import FlaskClient

from iiif_server import create_app
from iiif_server.config import Settings
from tests.conftest import (
    BLOCK,
    NFC_NAME,
    NFD_NAME,
    PATTERN_H,
    PATTERN_W,
    SUBFOLDER,
    block_colour,
    decode,
    make_pattern,
    pixel,
    save_pyramid,
)

Colour = tuple[int, ...]
Box = tuple[int, int, int, int]
JPEG_TOL = 6  # per channel, for JPEG output or a JPEG source
FULL = (0, 0, PATTERN_W, PATTERN_H)


# -- helpers ---------------------------------------------------------------------------------------------------------


def iiif_url(
    identifier: str = "pattern.tif",
    region: str = "full",
    size: str = "max",
    rotation: str = "0",
    quality: str = "default",
    fmt: str = "png",
    version: int = 3,
) -> str:
    return f"/iiif/{version}/{quote(identifier, safe='')}/{region}/{size}/{rotation}/{quality}.{fmt}"


def fetch(client: FlaskClient, url: str) -> pyvips.Image:
    """GET ``url``, require a 200, return the decoded body."""
    response = client.get(url)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.get_data(as_text=True)!r}"
    return decode(response.data)


def rhu(value: Fraction) -> int:
    """Round half up, as the Image API's size arithmetic does."""
    return math.floor(value + Fraction(1, 2))


def derived(known_new: int, other_old: int, known_old: int) -> int:
    """The dimension derived to keep the aspect ratio: other_old * known_new / known_old, rounded half up, ≥ 1."""
    return max(1, rhu(Fraction(other_old * known_new, known_old)))


def clamped_colour(col: int, row: int) -> Colour:
    """``block_colour`` as stored: make_pattern's cast to uchar clips to 0..255 (matters for big.tif)."""
    return tuple(min(255, max(0, v)) for v in block_colour(col, row))


def assert_close(got: Colour, expected: Colour, tol: int, where: str) -> None:
    diff = max(abs(a - b) for a, b in zip(got, expected, strict=True))
    assert diff <= tol, f"{where}: got {got}, expected {expected} (±{tol})"


def assert_blocks(image: pyvips.Image, region: Box, tol: int = 0, colour=block_colour, where: str = "") -> int:
    """Every block centre inside ``region`` (full-res px) maps to its block's colour in the scaled output.

    Returns the number of points checked so callers can assert the check was not vacuous.
    """
    x, y, w, h = region
    sx, sy = Fraction(image.width, w), Fraction(image.height, h)
    checked = 0
    for row in range(y // BLOCK, (y + h - 1) // BLOCK + 1):
        for col in range(x // BLOCK, (x + w - 1) // BLOCK + 1):
            cx, cy = col * BLOCK + BLOCK // 2, row * BLOCK + BLOCK // 2
            if not (x <= cx < x + w and y <= cy < y + h):
                continue
            ox, oy = math.floor((cx - x) * sx), math.floor((cy - y) * sy)
            assert_close(pixel(image, ox, oy)[:3], colour(col, row), tol, f"{where} block ({col},{row}) at ({ox},{oy})")
            checked += 1
    return checked


def max_abs_diff(a: pyvips.Image, b: pyvips.Image) -> float:
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands)
    return (a.cast("int") - b.cast("int")).abs().max()


def histogram(image: pyvips.Image) -> list[int]:
    """256-bin histogram of a 1-band uchar image."""
    counts = array.array("I")
    counts.frombytes(image.hist_find().cast("uint").write_to_memory())
    return list(counts)


def srgb_luminance_grey(colour: Colour) -> float:
    """The sRGB grey level with the same relative luminance Y (Rec. 709 primaries) as ``colour``."""

    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in colour)
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    encoded = y * 12.92 if y <= 0.0031308 else 1.055 * y ** (1 / 2.4) - 0.055
    return encoded * 255


def assert_plain_error(response, statuses: tuple[int, ...]) -> None:
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body.strip() and len(body.splitlines()) == 1, repr(body)


@pytest.fixture(scope="module")
def reference() -> pyvips.Image:
    """The 1000×800 pattern in memory: what a lossless source holds, for whole-image comparisons."""
    return make_pattern().copy_memory()


@pytest.fixture(scope="module")
def limited_app(settings: Settings) -> Flask:
    """An app with maxWidth (and hence maxHeight) 1500, so ``^max`` has a small, checkable answer."""
    return create_app(settings.replace(images={"max_width": 1500}))


@pytest.fixture
def limited_client(limited_app: Flask) -> Iterator[FlaskClient]:
    with limited_app.test_client() as test_client:
        yield test_client


# -- 1. regions ------------------------------------------------------------------------------------------------------


def test_pixel_region_places_blocks(client: FlaskClient, reference: pyvips.Image) -> None:
    """x,y,w,h: output is exactly the source rectangle; (50,50) is block (2,1), (250,150) is block (4,2)."""
    image = fetch(client, iiif_url(region="200,100,300,200"))
    assert (image.width, image.height) == (300, 200)
    assert pixel(image, 50, 50) == block_colour(2, 1)
    assert pixel(image, 250, 150) == block_colour(4, 2)
    assert max_abs_diff(image, reference.crop(200, 100, 300, 200)) == 0


def test_pixel_region_off_block_grid_is_exact_at_edges(client: FlaskClient, reference: pyvips.Image) -> None:
    """A region not aligned to blocks or tiles: the block boundaries land on the exact output columns/rows."""
    image = fetch(client, iiif_url(region="150,250,260,180"))
    assert (image.width, image.height) == (260, 180)
    assert pixel(image, 49, 49) == block_colour(1, 2)  # source (199,299)
    assert pixel(image, 50, 49) == block_colour(2, 2)  # source (200,299)
    assert pixel(image, 49, 50) == block_colour(1, 3)  # source (199,300)
    assert pixel(image, 259, 179) == block_colour(4, 4)  # source (409,429)
    assert max_abs_diff(image, reference.crop(150, 250, 260, 180)) == 0


@pytest.mark.parametrize(
    ("region", "box"),
    [
        ("pct:20,12.5,30,25", (200, 100, 300, 200)),
        ("pct:0,0,100,100", FULL),
        # 333.3 -> 333, 80, 333.4 -> 333, 400: each value rounded half up
        ("pct:33.33,10,33.34,50", (333, 80, 333, 400)),
        ("pct:10.05,10.0625,10.05,10.0625", (rhu(Fraction("100.5")), rhu(Fraction("80.5")), 101, 81)),
    ],
)
def test_percent_region(client: FlaskClient, reference: pyvips.Image, region: str, box: Box) -> None:
    """pct:x,y,w,h selects the rectangle whose pixel values are the percentages rounded half up."""
    image = fetch(client, iiif_url(region=region))
    assert (image.width, image.height) == box[2:]
    assert max_abs_diff(image, reference.crop(*box)) == 0


def test_square_region_is_centred(client: FlaskClient, reference: pyvips.Image) -> None:
    """square on 1000×800 is the centred 800×800 from x=100."""
    image = fetch(client, iiif_url(region="square"))
    assert (image.width, image.height) == (800, 800)
    assert pixel(image, 0, 0) == block_colour(1, 0)
    assert pixel(image, 799, 799) == block_colour(8, 7)
    assert max_abs_diff(image, reference.crop(100, 0, 800, 800)) == 0


def test_square_region_scaled(client: FlaskClient) -> None:
    """square then size 400,: block (1,0) at the top-left, block (8,7) at the bottom-right."""
    image = fetch(client, iiif_url(region="square", size="400,"))
    assert (image.width, image.height) == (400, 400)
    assert assert_blocks(image, (100, 0, 800, 800), tol=2) == 64


@pytest.mark.parametrize(
    ("region", "box"),
    [
        ("900,700,300,300", (900, 700, 100, 100)),
        ("950,0,1000,50", (950, 0, 50, 50)),
        ("0,799,5,5", (0, 799, 5, 1)),
        ("pct:90,90,50,50", (900, 720, 100, 80)),
    ],
)
def test_region_partly_outside_is_cropped(client: FlaskClient, reference: pyvips.Image, region: str, box: Box) -> None:
    """A region reaching past the edge is cut at the edge: size = clipped size, pixels from inside only."""
    image = fetch(client, iiif_url(region=region))
    assert (image.width, image.height) == box[2:]
    assert max_abs_diff(image, reference.crop(*box)) == 0


@pytest.mark.parametrize("region", ["1000,0,10,10", "0,800,10,10", "1000,800,1,1", "5000,5000,10,10", "pct:100,0,5,5"])
def test_region_entirely_outside_is_400(client: FlaskClient, region: str) -> None:
    """A region starting at or past the right/bottom edge selects nothing: 400."""
    assert_plain_error(client.get(iiif_url(region=region)), (400,))


# -- 2. sizes --------------------------------------------------------------------------------------------------------

W, H = PATTERN_W, PATTERN_H
SIZE_CASES = [
    # (size, region, expected output) for v3; derived dimensions computed here with Fraction
    ("333,", "full", (333, derived(333, H, W))),  # 266.4 -> 266
    (",401", "full", (derived(401, W, H), 401)),  # 501.25 -> 501
    (",333", "full", (derived(333, W, H), 333)),  # 416.25 -> 416
    (",3", "full", (derived(3, W, H), 3)),  # 3.75 -> 4
    ("1,", "full", (1, 1)),  # 0.8 -> 1
    (",1", "full", (1, 1)),  # 1.25 -> 1
    ("999,", "full", (999, derived(999, H, W))),  # 799.2 -> 799
    ("pct:33.3", "full", (333, rhu(Fraction(H) * Fraction("33.3") / 100))),  # 266.4 -> 266
    ("pct:50.05", "full", (rhu(Fraction(W) * Fraction("50.05") / 100), 400)),  # 500.5 -> 501, 400.4 -> 400
    ("pct:12.5", "full", (125, 100)),
    ("pct:0.1", "full", (1, 1)),
    ("pct:100", "full", (1000, 800)),
    ("!500,500", "full", (500, 400)),
    ("!400,500", "full", (400, 320)),
    ("!999,100", "full", (125, 100)),
    ("!333,333", "full", (333, 266)),
    ("!1,1", "full", (1, 1)),
    ("640,480", "full", (640, 480)),  # distorted
    ("1000,1", "full", (1000, 1)),
    ("max", "full", (1000, 800)),
    ("1000,800", "full", (1000, 800)),
    (",7", "0,0,300,200", (derived(7, 300, 200), 7)),  # 10.5 -> 11: exactly half rounds up
    ("5,", "0,0,200,300", (5, derived(5, 300, 200))),  # 7.5 -> 8
    ("pct:50", "0,0,5,3", (3, 2)),  # 2.5 -> 3, 1.5 -> 2
    ("pct:50", "0,0,1,1", (1, 1)),  # 0.5 -> 1, never 0
    ("!10,10", "0,0,300,200", (10, derived(10, 200, 300))),  # 6.67 -> 7
    ("max", "900,700,300,300", (100, 100)),  # max of the clipped region
    ("^1500,", "full", (1500, 1200)),
    ("^,1200", "full", (1500, 1200)),
    ("^pct:150", "full", (1500, 1200)),
    ("^1000,801", "full", (1000, 801)),
    ("^!1500,1500", "full", (1500, 1200)),
    ("^333,", "full", (333, 266)),  # ^ allows, not forces, upscaling
]


@pytest.mark.parametrize(("size", "region", "expected"), SIZE_CASES)
def test_size_v3_dimensions(client: FlaskClient, size: str, region: str, expected: tuple[int, int]) -> None:
    """Output dimensions follow Image API 3.0 §4.2 with round-half-up derived dimensions."""
    image = fetch(client, iiif_url(region=region, size=size, fmt="jpg"))
    assert (image.width, image.height) == expected


@pytest.mark.parametrize(
    "size", ["1500,", ",801", "1001,800", "1000,801", "pct:150", "pct:100.1", "!2000,1600", "full"]
)
def test_size_v3_refuses_upscaling_without_caret_and_full(client: FlaskClient, size: str) -> None:
    """3.0: a size larger than the region needs ^ (else 400); ``full`` is not a 3.0 size."""
    assert_plain_error(client.get(iiif_url(size=size)), (400,))


@pytest.mark.parametrize(
    ("size", "expected"),
    [("1500,", (1500, 1200)), ("full", (1000, 800)), ("max", (1000, 800)), ("pct:150", (1500, 1200)),
     (",401", (501, 401)), ("!2000,2000", (2000, 1600)), ("640,480", (640, 480))],
)  # fmt: skip
def test_size_v2_dimensions(client: FlaskClient, size: str, expected: tuple[int, int]) -> None:
    """2.1: ``full``/``max`` are the region size and upscaling needs no ^."""
    image = fetch(client, iiif_url(size=size, fmt="jpg", version=2))
    assert (image.width, image.height) == expected


@pytest.mark.parametrize("size", ["^1500,", "^max", "^pct:50"])
def test_size_v2_has_no_caret(client: FlaskClient, size: str) -> None:
    """2.1's grammar has no ^: 400."""
    assert_plain_error(client.get(iiif_url(size=size, version=2)), (400,))


@pytest.mark.parametrize(
    ("identifier", "size", "expected"),
    [
        ("pattern.tif", "max", (1000, 800)),
        ("pattern.tif", "^max", (1500, 1200)),  # scaled up to maxWidth/maxHeight 1500
        ("pattern.tif", "^1500,", (1500, 1200)),
        ("big.tif", "max", (1500, 1125)),  # scaled down to maxWidth 1500
        ("big.tif", "^max", (1500, 1125)),
    ],
)
def test_max_sizes_under_limits(
    limited_client: FlaskClient, identifier: str, size: str, expected: tuple[int, int]
) -> None:
    """``max`` never upscales and respects maxWidth; ``^max`` upscales up to the limits."""
    image = fetch(limited_client, iiif_url(identifier, size=size, fmt="jpg"))
    assert (image.width, image.height) == expected


@pytest.mark.parametrize("size", ["^1501,", "^,1201", "^pct:151", "2000,100"])
def test_sizes_beyond_limits_are_400(limited_client: FlaskClient, size: str) -> None:
    """A size beyond maxWidth/maxHeight is refused, with or without ^."""
    assert_plain_error(limited_client.get(iiif_url("big.tif", size=size)), (400,))


def test_upscaled_content(client: FlaskClient) -> None:
    """^2000, on a 200×100 region: each 100-px block becomes 1000 px of the same colour."""
    image = fetch(client, iiif_url(region="300,400,200,100", size="^2000,"))
    assert (image.width, image.height) == (2000, 1000)
    assert pixel(image, 500, 500) == block_colour(3, 4)
    assert pixel(image, 1500, 500) == block_colour(4, 4)
    assert pixel(image, 100, 100) == block_colour(3, 4)
    assert pixel(image, 1900, 900) == block_colour(4, 4)


# -- 3. scaled content -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "size", "tol"),
    [
        ("pattern.tif", "500,", 2),  # pyramid level 1
        ("pattern.tif", "250,", 2),  # pyramid level 2
        ("pattern.tif", "300,", 2),  # between levels: resampled
        ("pattern.tif", "!120,120", 2),  # smaller than any level
        ("pattern-strip.tif", "500,", 2),
        ("pattern.png", "500,", 2),
        ("pattern.png", "137,", 3),
        ("pattern.jpg", "500,", JPEG_TOL),
    ],
)
def test_scaled_full_image_colours(client: FlaskClient, identifier: str, size: str, tol: int) -> None:
    """A downscaled full image has every block's colour at the block centre's scaled position."""
    image = fetch(client, iiif_url(identifier, size=size))
    assert image.width == int(size.strip("!").split(",")[0])
    assert assert_blocks(image, FULL, tol, where=f"{identifier} {size}") == 80


def test_half_size_block_positions(client: FlaskClient) -> None:
    """full/500,: block (col,row) is at (col*50+25, row*50+25), also near the block's own corners."""
    image = fetch(client, iiif_url(size="500,"))
    assert (image.width, image.height) == (500, 400)
    for col in range(10):
        for row in range(8):
            for dx, dy in ((25, 25), (2, 2), (47, 47)):
                assert_close(pixel(image, col * 50 + dx, row * 50 + dy), block_colour(col, row), 2, f"({col},{row})")


def test_scaled_region_colours(client: FlaskClient) -> None:
    """A region read from a reduced level (200,100,600,400 at 150,: 25 px per block) keeps block colours (±2)."""
    image = fetch(client, iiif_url(region="200,100,600,400", size="150,"))
    assert (image.width, image.height) == (150, 100)
    assert assert_blocks(image, (200, 100, 600, 400), tol=2) == 24


def downscaled_pattern(region: Box, factor: int) -> pyvips.Image:
    """What region shrunk by an integer factor must look like: block boundaries fall on whole output pixels
    whenever region x, y and BLOCK are multiples of ``factor``, so every pixel is exact."""
    x, y, w, h = region
    xy = pyvips.Image.xyz(w // factor, h // factor)
    col = ((xy[0] * factor + x) / BLOCK).floor()
    row = ((xy[1] * factor + y) / BLOCK).floor()
    return (col * 25 + 5).bandjoin([row * 30 + 10, 250 - col * 12 - row * 8]).cast("uchar")


@pytest.mark.parametrize(
    ("region", "factor"),
    [
        ((0, 0, 1000, 800), 2),
        ((0, 0, 1000, 800), 4),
        ((0, 0, 512, 512), 2),  # OpenSeadragon tiles of pattern.tif at scale 2 ...
        ((512, 512, 488, 288), 2),  # ... including the bottom-right edge tile
        ((0, 512, 1000, 288), 4),
        ((200, 100, 400, 300), 2),
        ((148, 252, 400, 300), 4),
        ((150, 250, 600, 400), 2),
    ],
)
def test_reduced_levels_are_pixel_aligned(client: FlaskClient, region: Box, factor: int) -> None:
    """Downscaling by 2 or 4 (read from pattern.tif's lossless pyramid) is exact: no pixel of offset anywhere."""
    x, y, w, h = region
    image = fetch(client, iiif_url(region=f"{x},{y},{w},{h}", size=f"{w // factor},"))
    assert (image.width, image.height) == (w // factor, h // factor)
    assert max_abs_diff(image, downscaled_pattern(region, factor)) == 0


# -- 4. tiles of big.tif at every scale factor -----------------------------------------------------------------------

BIG_W, BIG_H, TILE = 4000, 3000, 256
# big.tif's reduced levels are JPEG-compressed: at 1/8 and 1/16 a block is only 12.5 / 6.25 px, so chroma
# subsampling of the stored level alone moves colours by up to ~15. The tolerance is looser there.
TILE_TOL = {1: 8, 2: 8, 4: 8, 8: 16, 16: 16}


def tile_grid(scale: int) -> Iterator[Box]:
    """Every tile of the OpenSeadragon grid at ``scale``; for the fine levels only a sample incl. all edges."""
    step = TILE * scale
    xs, ys = list(range(0, BIG_W, step)), list(range(0, BIG_H, step))
    if scale <= 2:
        xs = sorted({xs[0], xs[1], xs[len(xs) // 2], xs[-1]})
        ys = sorted({ys[0], ys[len(ys) // 2], ys[-1]})
    for y in ys:
        for x in xs:
            yield x, y, min(step, BIG_W - x), min(step, BIG_H - y)


def tile_points(box: Box, scale: int) -> Iterator[tuple[int, int, int, int]]:
    """(full-res x, y, block col, row) sample points inside ``box``, far from block edges (≥ 25 px, or centres)."""
    x, y, w, h = box
    offsets = (25, 50, 75) if scale <= 2 else (50,)
    for row in range(y // BLOCK, (y + h - 1) // BLOCK + 1):
        for col in range(x // BLOCK, (x + w - 1) // BLOCK + 1):
            for oy in offsets:
                for ox in offsets:
                    px, py = col * BLOCK + ox, row * BLOCK + oy
                    if x <= px < x + w and y <= py < y + h:
                        yield px, py, col, row


@pytest.mark.parametrize("style", ["v3 w,", "v3 w,h", "v2 w,"])
@pytest.mark.parametrize("scale", [1, 2, 4, 8, 16])
def test_tiles_at_every_scale_factor(client: FlaskClient, scale: int, style: str) -> None:
    """OpenSeadragon tiles of big.tif: exact size ceil(w/s)×ceil(h/s) (edge tiles too) and the right content."""
    version = 2 if style.startswith("v2") else 3
    tiles = list(tile_grid(scale))
    assert any(x + w == BIG_W for x, _, w, _ in tiles) and any(y + h == BIG_H for _, y, _, h in tiles)
    for box in tiles:
        x, y, w, h = box
        out_w, out_h = math.ceil(w / scale), math.ceil(h / scale)
        assert derived(out_w, h, w) == out_h  # the w, form implies the same height the viewer expects
        size = f"{out_w},{out_h}" if style.endswith("w,h") else f"{out_w},"
        image = fetch(client, iiif_url("big.tif", f"{x},{y},{w},{h}", size, fmt="jpg", version=version))
        assert (image.width, image.height) == (out_w, out_h), box
        points = list(tile_points(box, scale))
        assert points
        for px, py, col, row in points:
            ox, oy = (px - x) // scale, (py - y) // scale
            assert_close(
                pixel(image, ox, oy), clamped_colour(col, row), TILE_TOL[scale], f"s={scale} {box} ({px},{py})"
            )


@pytest.fixture(scope="module")
def odd_client(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Iterator[FlaskClient]:
    """A server over one lossless 1030×830 pyramid, whose 1/4 level (257×207) is rounded down from 257.5×207.5."""
    root = tmp_path_factory.mktemp("odd")
    save_pyramid(make_pattern(1030, 830), root / "odd.tif")
    with create_app(settings.replace(images={"root": root})).test_client() as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("region", "size", "block"),
    [("1002,802,28,28", "7,", (10, 8)), ("1002,0,28,100", "7,", (10, 0)), ("0,802,100,28", "25,", (0, 8))],
)
def test_edge_of_a_rounded_down_level(odd_client: FlaskClient, region: str, size: str, block: tuple[int, int]) -> None:
    """A region ending at the image edge, read from a level that lost half a pixel to rounding, is filled to its
    exact size with image content (the edge block's colour), not padding."""
    image = fetch(odd_client, iiif_url("odd.tif", region, size))
    _, _, w, h = (int(v) for v in region.split(","))
    assert (image.width, image.height) == (w // 4, h // 4)
    want = clamped_colour(*block)
    assert pixel(image, image.width - 1, image.height - 1) == want
    assert max_abs_diff(image, image.new_from_image(list(want))) == 0


# -- 5. rotation by 90s and mirroring --------------------------------------------------------------------------------


def transform(x: int, y: int, w: int, h: int, mirror: bool, degrees: int) -> tuple[int, int]:
    """Where source pixel (x,y) of a w×h image goes: mirror horizontally first, then rotate clockwise."""
    if mirror:
        x = w - 1 - x
    for _ in range(degrees // 90):
        x, y, w, h = h - 1 - y, x, h, w
    return x, y


@pytest.mark.parametrize("mirror", [False, True], ids=["plain", "mirrored"])
@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_rotation_by_90s_moves_pixels(client: FlaskClient, degrees: int, mirror: bool) -> None:
    """On region 0,0,300,200 every block centre and every corner pixel lands where a clockwise turn puts it."""
    rotation = f"{'!' if mirror else ''}{degrees}"
    image = fetch(client, iiif_url(region="0,0,300,200", rotation=rotation))
    expected_dims = (300, 200) if degrees in (0, 180) else (200, 300)
    assert (image.width, image.height) == expected_dims
    points = [(0, 0), (299, 0), (0, 199), (299, 199), (99, 99), (100, 100), (199, 100)]
    points += [(col * 100 + 50, row * 100 + 50) for col in range(3) for row in range(2)]
    for x, y in points:
        ox, oy = transform(x, y, 300, 200, mirror, degrees)
        assert pixel(image, ox, oy) == block_colour(x // 100, y // 100), (rotation, (x, y), (ox, oy))


@pytest.mark.parametrize(
    ("rotation", "corner"),
    [("90", "top-right"), ("180", "bottom-right"), ("270", "bottom-left"), ("!0", "top-right"),
     ("!90", "bottom-right"), ("!180", "bottom-left"), ("!270", "top-left")],
)  # fmt: skip
def test_rotation_block_00_corner(client: FlaskClient, rotation: str, corner: str) -> None:
    """Where block (0,0) — the source's top-left — ends up, stated plainly."""
    image = fetch(client, iiif_url(region="0,0,300,200", rotation=rotation))
    w, h = image.width, image.height
    at = {
        "top-left": (10, 10),
        "top-right": (w - 11, 10),
        "bottom-left": (10, h - 11),
        "bottom-right": (w - 11, h - 11),
    }
    assert pixel(image, *at[corner]) == block_colour(0, 0)
    assert sum(pixel(image, *point) == block_colour(0, 0) for point in at.values()) == 1


@pytest.mark.parametrize("identifier", ["pattern-strip.tif", "pattern.png"])
def test_rotation_from_untiled_sources(client: FlaskClient, identifier: str) -> None:
    """Sequentially read sources rotate and mirror correctly too (region from the middle of the image)."""
    image = fetch(client, iiif_url(identifier, "400,300,300,200", rotation="!90"))
    assert (image.width, image.height) == (200, 300)
    for col in range(3):
        for row in range(2):
            ox, oy = transform(col * 100 + 50, row * 100 + 50, 300, 200, True, 90)
            assert pixel(image, ox, oy) == block_colour(col + 4, row + 3)


@pytest.mark.parametrize(("rotation", "same_as"), [("360", "0"), ("!360", "!0"), ("90.0", "90"), ("0180", "180")])
def test_equivalent_rotations_render_identically(client: FlaskClient, rotation: str, same_as: str) -> None:
    """360 is a full turn (same pixels as 0) and numerically equal spellings give the same image."""
    a = fetch(client, iiif_url(region="0,0,300,200", rotation=rotation))
    b = fetch(client, iiif_url(region="0,0,300,200", rotation=same_as))
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands)
    assert max_abs_diff(a, b) == 0


@pytest.mark.parametrize("rotation", ["361", "360.5", "-90", "!-1", "720", "90!", "1e2"])
def test_rotation_outside_0_360_is_400(client: FlaskClient, rotation: str) -> None:
    """Rotation is a number from 0 to 360, optionally prefixed by !; anything else is 400."""
    assert_plain_error(client.get(iiif_url(rotation=rotation)), (400,))


# -- 6. arbitrary rotation -------------------------------------------------------------------------------------------


def rotated_position(x: float, y: float, w: int, h: int, out_w: int, out_h: int, degrees: float, mirror: bool):
    """Output position of source point (x,y) after optional mirroring then clockwise rotation about the centre."""
    if mirror:
        x = w - x
    theta = math.radians(degrees)
    dx, dy = x - w / 2, y - h / 2
    return out_w / 2 + dx * math.cos(theta) - dy * math.sin(theta), out_h / 2 + dx * math.sin(theta) + dy * math.cos(
        theta
    )


@pytest.mark.parametrize("rotation", ["30", "22.5", "!30", "135", "300.5"])
def test_arbitrary_rotation_png(client: FlaskClient, rotation: str) -> None:
    """png: bounding-box size, transparent corners, opaque blocks where a clockwise rotation puts them."""
    mirror, degrees = rotation.startswith("!"), float(rotation.lstrip("!"))
    w, h = 500, 300  # blocks (0..4, 0..2); the centre (250,150) is block (2,1)'s centre
    image = fetch(client, iiif_url(region=f"0,0,{w},{h}", rotation=rotation))
    theta = math.radians(degrees)
    box_w = w * abs(math.cos(theta)) + h * abs(math.sin(theta))
    box_h = w * abs(math.sin(theta)) + h * abs(math.cos(theta))
    assert abs(image.width - box_w) <= 2 and abs(image.height - box_h) <= 2, (image.width, image.height, box_w, box_h)
    assert image.bands == 4
    for corner in ((0, 0), (image.width - 1, 0), (0, image.height - 1), (image.width - 1, image.height - 1)):
        assert pixel(image, *corner)[3] == 0, corner
    assert pixel(image, image.width // 2, image.height // 2) == (*block_colour(2, 1), 255)
    for col in range(5):
        for row in range(3):
            ox, oy = rotated_position(col * 100 + 50, row * 100 + 50, w, h, image.width, image.height, degrees, mirror)
            got = pixel(image, math.floor(ox), math.floor(oy))
            assert_close(got, (*block_colour(col, row), 255), 2, f"{rotation}: block ({col},{row})")


@pytest.mark.parametrize("rotation", ["30", "22.5"])
def test_arbitrary_rotation_jpg_has_white_corners(client: FlaskClient, rotation: str) -> None:
    """jpg has no alpha: the area outside the rotated image is white."""
    image = fetch(client, iiif_url(region="0,0,500,300", rotation=rotation, fmt="jpg"))
    assert image.bands == 3
    for corner in ((0, 0), (image.width - 1, 0), (0, image.height - 1), (image.width - 1, image.height - 1)):
        assert min(pixel(image, *corner)) >= 250, corner
    assert_close(pixel(image, image.width // 2, image.height // 2), block_colour(2, 1), JPEG_TOL, "centre")


# -- 7. quality ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["pattern.tif", "pattern.png"])
def test_gray_is_luminance(client: FlaskClient, identifier: str) -> None:
    """gray: one band whose value is the sRGB grey of the block colour's luminance (±3)."""
    image = fetch(client, iiif_url(identifier, size="500,", quality="gray"))
    assert image.bands == 1
    for col in range(10):
        for row in range(8):
            got = pixel(image, col * 50 + 25, row * 50 + 25)[0]
            want = srgb_luminance_grey(block_colour(col, row))
            assert abs(got - want) <= 3, (col, row, got, want)


def test_gray_jpg_is_one_band(client: FlaskClient) -> None:
    """gray as jpg is a greyscale JPEG, not three equal channels."""
    image = fetch(client, iiif_url(size="250,", quality="gray", fmt="jpg"))
    assert image.bands == 1
    assert abs(pixel(image, 25 * 3 + 12, 12)[0] - srgb_luminance_grey(block_colour(3, 0))) <= JPEG_TOL


def test_bitonal_has_only_black_and_white(client: FlaskClient) -> None:
    """bitonal png: one band, only 0 and 255 (both present); bright blocks white, dark blocks black."""
    image = fetch(client, iiif_url(size="500,", quality="bitonal"))
    assert image.bands == 1
    counts = histogram(image)
    assert {value for value, count in enumerate(counts) if count} == {0, 255}
    decided = 0
    for col in range(10):
        for row in range(8):
            grey = srgb_luminance_grey(block_colour(col, row))
            if abs(grey - 127.5) < 4:
                continue  # too close to any threshold to demand a side
            assert pixel(image, col * 50 + 25, row * 50 + 25) == ((255,) if grey > 127.5 else (0,)), (col, row, grey)
            decided += 1
    assert decided > 60


@pytest.mark.parametrize("quality", ["default", "color"])
def test_color_and_default_keep_colour(client: FlaskClient, reference: pyvips.Image, quality: str) -> None:
    """default and color: three bands, pixels unchanged."""
    image = fetch(client, iiif_url(region="200,100,300,200", quality=quality))
    assert image.bands == 3
    assert max_abs_diff(image, reference.crop(200, 100, 300, 200)) == 0


# -- 8. formats ------------------------------------------------------------------------------------------------------

FORMATS = {
    # format: (media type, magic prefixes, loader prefix, colour tolerance)
    "jpg": ("image/jpeg", (b"\xff\xd8\xff",), "jpegload", JPEG_TOL),
    "png": ("image/png", (b"\x89PNG\r\n\x1a\n",), "pngload", 0),
    "webp": ("image/webp", (b"RIFF",), "webpload", 8),
    "tif": ("image/tiff", (b"II*\x00", b"MM\x00*"), "tiffload", 0),
    "gif": ("image/gif", (b"GIF87a", b"GIF89a"), "gifload", 8),
}


@pytest.mark.parametrize("version", [3, 2])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format(client: FlaskClient, fmt: str, version: int) -> None:
    """Each format: right Content-Type, magic bytes, decodes as that format with the right size and colours."""
    media_type, magics, loader, tol = FORMATS[fmt]
    response = client.get(iiif_url(region="200,100,300,200", size="150,", fmt=fmt, version=version))
    assert response.status_code == 200
    assert response.mimetype == media_type
    assert response.data.startswith(magics)
    if fmt == "webp":
        assert response.data[8:12] == b"WEBP"
    image = decode(response.data)
    assert image.get("vips-loader").startswith(loader)
    assert (image.width, image.height) == (150, 100)
    assert assert_blocks(image, (200, 100, 300, 200), tol, where=fmt) == 6


# -- 9. alpha --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "tif", "webp"])
def test_alpha_kept(client: FlaskClient, fmt: str) -> None:
    """alpha.png keeps its alpha: left half opaque red, right half alpha 0."""
    image = fetch(client, iiif_url("alpha.png", fmt=fmt))
    assert (image.width, image.height, image.bands) == (400, 300, 4)
    left, right = pixel(image, 100, 150), pixel(image, 300, 150)
    assert left[3] == 255 and right[3] == 0
    assert_close(left[:3], (255, 0, 0), 0 if fmt != "webp" else 3, "left")


def test_alpha_flattened_to_white_in_jpg(client: FlaskClient) -> None:
    """jpg has no alpha: the transparent half becomes white, the opaque half stays red."""
    image = fetch(client, iiif_url("alpha.png", fmt="jpg"))
    assert image.bands == 3
    assert min(pixel(image, 300, 150)) >= 250
    assert min(pixel(image, 399, 0)) >= 250
    assert_close(pixel(image, 100, 150), (255, 0, 0), JPEG_TOL, "left")


def test_gray_keeps_alpha(client: FlaskClient) -> None:
    """gray png of an image with alpha: grey + alpha, the transparency unchanged."""
    image = fetch(client, iiif_url("alpha.png", quality="gray"))
    assert image.bands == 2
    left, right = pixel(image, 100, 150), pixel(image, 300, 150)
    assert left[1] == 255 and right[1] == 0
    assert abs(left[0] - srgb_luminance_grey((255, 0, 0))) <= 3


def test_arbitrary_rotation_of_alpha_source(client: FlaskClient) -> None:
    """Rotating an image that already has alpha keeps both its own transparency and the transparent corners."""
    image = fetch(client, iiif_url("alpha.png", rotation="45"))
    assert image.bands == 4
    assert pixel(image, 0, 0)[3] == 0
    ox, oy = rotated_position(100, 150, 400, 300, image.width, image.height, 45, False)
    assert pixel(image, math.floor(ox), math.floor(oy)) == (255, 0, 0, 255)
    ox, oy = rotated_position(300, 150, 400, 300, image.width, image.height, 45, False)
    assert pixel(image, math.floor(ox), math.floor(oy))[3] == 0


# -- 10. sources -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "tol"),
    [("pattern.tif", 0), ("pattern-strip.tif", 0), ("pattern.png", 0), ("inside-link.png", 0), ("pattern.jpg", 6)],
)
@pytest.mark.parametrize(("region", "size"), [("200,100,300,200", "max"), ("150,250,600,400", "150,")])
def test_sources_agree(client: FlaskClient, identifier: str, tol: int, region: str, size: str) -> None:
    """The same request on each source format gives the same colours in the same places."""
    box = tuple(int(v) for v in region.split(","))
    image = fetch(client, iiif_url(identifier, region, size))
    assert image.width == (box[2] if size == "max" else 150)
    assert assert_blocks(image, box, tol if size == "max" else max(tol, 2), where=identifier) >= 6


def test_lossless_sources_are_identical(client: FlaskClient) -> None:
    """Lossless sources give byte-identical pixels for the same crop."""
    images = [
        fetch(client, iiif_url(name, "333,222,444,333")) for name in ("pattern.tif", "pattern-strip.tif", "pattern.png")
    ]
    assert max_abs_diff(images[0], images[1]) == 0
    assert max_abs_diff(images[0], images[2]) == 0


@pytest.mark.parametrize(
    ("region", "size", "box"), [("full", "125,", FULL), ("200,100,400,300", "50,", (200, 100, 400, 300))]
)
def test_jpeg_shrink_on_load(client: FlaskClient, region: str, size: str, box: Box) -> None:
    """1/8 of the JPEG (decoded with shrink-on-load) still has each block's colour at its centre."""
    image = fetch(client, iiif_url("pattern.jpg", region, size))
    assert image.width == int(size.rstrip(","))
    assert image.height == derived(image.width, box[3], box[2])
    assert assert_blocks(image, box, JPEG_TOL, where="jpeg 1/8") >= 12


# -- 11. identifiers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize(("name", "dims"), [(NFC_NAME, (600, 400)), (NFD_NAME, (300, 200))])
@pytest.mark.parametrize("slash", ["%2F", "/"])
def test_subfolder_identifiers_in_either_normal_form(
    client: FlaskClient, name: str, dims: tuple[int, int], form: str, slash: str
) -> None:
    """Files stored NFC or NFD are found whether the URL is NFC or NFD (and with an encoded or plain /)."""
    identifier = unicodedata.normalize(form, f"{SUBFOLDER}/{name}")
    encoded = quote(identifier, safe="")
    if slash == "/":
        encoded = encoded.replace("%2F", "/")
    image = fetch(client, f"/iiif/3/{encoded}/full/max/0/default.png")
    assert (image.width, image.height) == dims
    assert max_abs_diff(image, make_pattern(*dims)) == 0


def test_identifier_with_space_plus_and_hash(client: FlaskClient) -> None:
    """'odd name + #1.png' (percent-encoded) is served: it is a copy of alpha.png."""
    image = fetch(client, iiif_url("odd name + #1.png"))
    assert (image.width, image.height, image.bands) == (400, 300, 4)
    assert pixel(image, 100, 150) == (255, 0, 0, 255)


# -- 12. broken and forbidden sources --------------------------------------------------------------------------------


CLIENT_ERRORS_BUT_404 = tuple(status for status in range(400, 500) if status != 404)  # the server uses 422


@pytest.mark.parametrize("identifier", ["corrupt.jpg", "empty.png", "truncated.tif"])
@pytest.mark.parametrize("request_kind", ["image", "tile", "info"])
def test_broken_source_fails_alone(
    client: FlaskClient, reference: pyvips.Image, identifier: str, request_kind: str
) -> None:
    """A broken file gives a 4xx one-line text/plain error (twice: no cached half-state), then a good image renders."""
    urls = {
        "image": iiif_url(identifier, size="max"),
        "tile": iiif_url(identifier, "0,0,256,256", "128,", fmt="jpg"),
        "info": f"/iiif/3/{quote(identifier, safe='')}/info.json",
    }
    for _ in range(2):
        response = client.get(urls[request_kind])
        assert_plain_error(response, CLIENT_ERRORS_BUT_404)
    image = fetch(client, iiif_url(region="200,100,300,200"))
    assert max_abs_diff(image, reference.crop(200, 100, 300, 200)) == 0


@pytest.mark.parametrize("identifier", ["notes.txt", "escape.png", "missing.png", "notes"])
def test_never_served(client: FlaskClient, identifier: str) -> None:
    """A non-image extension or a symlink leaving the root is 404, like a missing file."""
    assert_plain_error(client.get(iiif_url(identifier)), (404,))
    assert_plain_error(client.get(f"/iiif/3/{quote(identifier, safe='')}/info.json"), (404,))


def test_symlink_inside_root_is_served(client: FlaskClient, reference: pyvips.Image) -> None:
    """inside-link.png points to pattern.png inside the root: served with its pixels."""
    image = fetch(client, iiif_url("inside-link.png", region="500,400,200,200"))
    assert max_abs_diff(image, reference.crop(500, 400, 200, 200)) == 0
