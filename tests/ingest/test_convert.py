"""One scan -> one master: pixel-level checks of ``iiif_server.ingest.convert``.

Every input is synthesised with pyvips in ``tmp_path``. Assertions are on decoded pixels, bands,
interpretation, resolution and the TIFF's own tags (read with Pillow, independently of libvips).
Expected colours come from libvips' colour management applied directly to the source file (the
reference conversion) or from arithmetic done here, never from the converter's own helpers.

Two small ICC profiles are written here byte by byte (ICC v2): a "toy" CMYK profile, so that
honouring an embedded CMYK profile can be told apart from falling back to libvips' built-in one,
and a linear-gamma grey profile.
"""

from __future__ import annotations

import itertools
import json
import random
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import pyvips
from PIL import Image

from iiif_server.ingest.convert import Converted, ConvertError, MasterOptions, to_master

REPO = Path(__file__).resolve().parents[2]
OPTIONS = MasterOptions()
JPEG_MAD = 1.5  # mean absolute difference a Q90 JPEG master may add to smooth content
PATCH_TOL = 3.0  # per band, mean of a flat patch after JPEG compression

# TIFF tags, read with Pillow
COMPRESSION, PHOTOMETRIC, RESOLUTION_UNIT, TILE_WIDTH, TILE_LENGTH = 259, 262, 296, 322, 323
JPEG, DEFLATE = 7, (8, 32946)
MINISBLACK, RGB = 1, 2
INCH = 2


# --- helpers ------------------------------------------------------------------------------------


def convert(source: Path) -> tuple[Converted, pyvips.Image, Path]:
    target = source.with_name(source.name + ".master.tif")
    converted = to_master(source, target, OPTIONS)
    return converted, pyvips.Image.new_from_file(str(target)), target


def mad(a: pyvips.Image, b: pyvips.Image) -> float:
    """Mean absolute difference over all pixels and bands."""
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands)
    return float((a.cast("float") - b.cast("float")).abs().avg())


def patch(image: pyvips.Image, x: int, y: int, size: int = 16) -> list[float]:
    """Per-band mean of the ``size``-square centred on (x, y)."""
    crop = image.crop(x - size // 2, y - size // 2, size, size)
    return [float(band.avg()) for band in crop.bandsplit()]


def near(values: list[float], expected: tuple[float, ...], tol: float = PATCH_TOL) -> bool:
    return len(values) == len(expected) and all(abs(v - e) <= tol for v, e in zip(values, expected, strict=True))


def gradient(width: int = 512, height: int = 384) -> pyvips.Image:
    """Smooth, saturated 8-bit sRGB content: every hue region, dark to light."""
    xy = pyvips.Image.xyz(width, height)
    r = xy[0] * 255 / (width - 1)
    g = xy[1] * 255 / (height - 1)
    b = 255 - (xy[0] + xy[1]) * 255 / (width + height - 2)
    return r.bandjoin([g, b]).cast("uchar").copy(interpretation="srgb")


def with_profile(image: pyvips.Image, profile: bytes) -> pyvips.Image:
    tagged = image.copy()
    tagged.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    return tagged


def tiff_tags(path: Path) -> list[dict[int, Any]]:
    """The tags of every page (IFD) of a TIFF, read by Pillow."""
    pages = []
    with Image.open(path) as tiff:
        for index in range(getattr(tiff, "n_frames", 1)):
            tiff.seek(index)
            pages.append(dict(tiff.tag_v2))
    return pages


def flat_stripes(values: Sequence[tuple[int, ...]], interpretation: str, fmt: str, size: int = 64) -> pyvips.Image:
    """Side-by-side ``size``-square flat patches, one per value."""
    patches = [pyvips.Image.black(size, size, bands=len(v)) + list(v) for v in values]
    return pyvips.Image.arrayjoin(patches).cast(fmt).copy(interpretation=interpretation)


# --- ICC profiles, ICC v2, written here -----------------------------------------------------------

D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _icc(device_class: bytes, space: bytes, pcs: bytes, name: str, tags: list[tuple[bytes, bytes]]) -> bytes:
    text = name.encode("ascii")
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text) + 1) + text + b"\0" + struct.pack(">IIHB", 0, 0, 0, 0)
    desc += bytes(67)
    wtpt = b"XYZ " + bytes(4) + b"".join(_s15(v) for v in D50)
    cprt = b"text" + bytes(4) + b"public domain\0"
    tags = [(b"desc", desc), (b"wtpt", wtpt), (b"cprt", cprt), *tags]
    offset = 128 + 4 + 12 * len(tags)
    table = data = b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = struct.pack(">I", offset + len(data)) + bytes(4) + struct.pack(">I", 0x02100000)
    header += device_class + space + pcs + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0)
    header += b"".join(_s15(v) for v in D50)
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def toy_cmyk_profile() -> bytes:
    """A CMYK -> Lab profile unlike libvips' built-in one: (c, m, y, k) looks like the sRGB colour
    ((1-c)(1-k), (1-m)(1-k), (1-y)(1-k)), so 100 % cyan is (0, 255, 255), interpolated in Lab."""
    corners = list(itertools.product((0, 1), repeat=4))  # first channel varies slowest, as the CLUT
    rgb = [round(v * 255) for c, m, y, k in corners for v in ((1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k))]
    srgb = pyvips.Image.new_from_memory(bytes(rgb), len(corners), 1, 3, "uchar").copy(interpretation="srgb")
    lab = srgb.icc_import(input_profile="srgb", intent="relative")  # PCS Lab, D50
    clut = b""
    for index in range(len(corners)):
        lightness, a, b = lab.getpoint(index, 0)
        encoded = (lightness * 65280 / 100, (a + 128) * 256, (b + 128) * 256)  # lut16 (v2) Lab encoding
        clut += struct.pack(">3H", *(min(max(round(v), 0), 65535) for v in encoded))
    identity = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    a2b0 = b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + b"".join(_s15(v) for v in identity)
    a2b0 += struct.pack(">HH", 2, 2) + struct.pack(">HH", 0, 65535) * 4 + clut + struct.pack(">HH", 0, 65535) * 3
    return _icc(b"prtr", b"CMYK", b"Lab ", "toy CMYK", [(b"A2B0", a2b0)])


def linear_grey_profile() -> bytes:
    """Grey with gamma 1.0: stored 50 means 19.6 % luminance, which is about 122 in sRGB."""
    ktrc = b"curv" + bytes(4) + struct.pack(">IH", 1, 0x0100)
    return _icc(b"mntr", b"GRAY", b"XYZ ", "linear grey", [(b"kTRC", ktrc)])


def srgb_reference(path: Path) -> pyvips.Image:
    """libvips' own conversion of the file's embedded profile to 8-bit sRGB: what the master should show."""
    return pyvips.Image.new_from_file(str(path)).icc_transform("srgb", embedded=True, intent="relative", depth=8)


# --- the master's structure ---------------------------------------------------------------------


def test_master_is_a_256px_tiled_jpeg_pyramid_of_8bit_srgb(tmp_path: Path) -> None:
    source = gradient(1000, 700)
    source.tiffsave(str(tmp_path / "scan.tif"))  # plain strip TIFF, uncompressed
    converted, master, target = convert(tmp_path / "scan.tif")

    assert converted == Converted(1000, 700, 3, "tiffload", ())
    assert (master.width, master.height, master.bands) == (1000, 700, 3)
    assert (master.format, master.interpretation) == ("uchar", "srgb")
    assert mad(master, source) < JPEG_MAD
    assert "icc-profile-data" not in master.get_fields()

    pages = tiff_tags(target)
    assert len(pages) == master.get("n-pages") >= 3
    for tags in pages:
        assert tags[COMPRESSION] == JPEG
        assert (tags[TILE_WIDTH], tags[TILE_LENGTH]) == (256, 256)
        assert tags[PHOTOMETRIC] in (RGB, 6)  # RGB, or YCbCr inside JPEG: both decode to RGB
        assert tags[258] == (8, 8, 8)  # BitsPerSample

    # a real pyramid: each level halves the one above, down to one tile, and shows the same picture
    sizes = [(tags[256], tags[257]) for tags in pages]
    assert sizes[0] == (1000, 700)
    for (w, h), (half_w, half_h) in itertools.pairwise(sizes):
        assert abs(half_w - w / 2) <= 1 and abs(half_h - h / 2) <= 1
    assert sizes[-1][0] <= 256 and sizes[-1][1] <= 256
    for page in (1, len(pages) - 1):
        level = pyvips.Image.new_from_file(str(target), page=page)
        expected = source.resize(level.width / source.width, vscale=level.height / source.height)
        assert mad(level, expected) < 2 * JPEG_MAD


def test_grey_scan_gives_a_one_band_jpeg_master(tmp_path: Path) -> None:
    source = gradient(600, 400)[1].copy(interpretation="b-w")
    source.jpegsave(str(tmp_path / "grey.jpg"), Q=95)
    decoded = pyvips.Image.new_from_file(str(tmp_path / "grey.jpg"))
    converted, master, target = convert(tmp_path / "grey.jpg")

    assert (converted.bands, converted.source_format) == (1, "jpegload")
    assert (master.bands, master.format, master.interpretation) == (1, "uchar", "b-w")
    assert mad(master, decoded) < JPEG_MAD
    first = tiff_tags(target)[0]
    assert (first[COMPRESSION], first[PHOTOMETRIC], first[TILE_WIDTH]) == (JPEG, MINISBLACK, 256)


# --- colour: embedded profiles honoured -----------------------------------------------------------


def test_cmyk16_with_embedded_profile_matches_the_reference_conversion(tmp_path: Path) -> None:
    rgb = gradient()
    cmyk = rgb.icc_transform("cmyk", depth=16, intent="relative")  # attaches libvips' CMYK profile
    assert (cmyk.format, cmyk.interpretation, cmyk.bands) == ("ushort", "cmyk", 4)
    cmyk.tiffsave(str(tmp_path / "cmyk16.tif"))
    converted, master, _ = convert(tmp_path / "cmyk16.tif")

    assert (master.bands, master.format, master.interpretation) == (3, "uchar", "srgb")
    assert converted.notes == ("CMYK converted to sRGB through its embedded ICC profile",)
    assert mad(master, srgb_reference(tmp_path / "cmyk16.tif")) < JPEG_MAD
    assert "icc-profile-data" not in master.get_fields()
    # the round trip through CMYK stays recognisably the original (gamut clipping aside)
    assert mad(master, rgb) < 25
    # and the bands really were converted, not relabelled: raw C, M, Y >> 8 are nothing like it
    assert mad(master, (cmyk.extract_band(0, n=3) >> 8).cast("uchar")) > 60


CMYK_PATCHES = [  # (c, m, y, k) in 8-bit units
    (0, 0, 0, 0),
    (255, 0, 0, 0),
    (0, 255, 0, 0),
    (0, 0, 255, 0),
    (0, 0, 0, 255),
    (128, 0, 0, 0),
    (0, 128, 128, 0),
]
TOY_EXPECTED = {  # what the toy profile means, from its definition
    (0, 0, 0, 0): (255, 255, 255),
    (255, 0, 0, 0): (0, 255, 255),
    (0, 255, 0, 0): (255, 0, 255),
    (0, 0, 255, 0): (255, 255, 0),
    (0, 0, 0, 255): (0, 0, 0),
}


@pytest.mark.parametrize("kind", ["tif8", "tif16", "jpg"])
def test_cmyk_own_profile_is_honoured_not_replaced_by_the_builtin_one(tmp_path: Path, kind: str) -> None:
    cmyk = flat_stripes(CMYK_PATCHES, "cmyk", "uchar")
    if kind == "tif16":
        cmyk = (cmyk.cast("ushort") * 257).cast("ushort").copy(interpretation="cmyk")
    tagged = with_profile(cmyk, toy_cmyk_profile())
    path = tmp_path / ("cmyk.jpg" if kind == "jpg" else "cmyk.tif")
    if kind == "jpg":
        tagged.jpegsave(str(path), Q=98)  # Adobe CMYK JPEG with the profile in APP2
    else:
        tagged.tiffsave(str(path))
    converted, master, _ = convert(path)

    assert "through its embedded ICC profile" in converted.notes[0]
    reference = srgb_reference(path)
    assert mad(master, reference) < JPEG_MAD
    for index, cmyk_value in enumerate(CMYK_PATCHES):
        if cmyk_value in TOY_EXPECTED:
            assert near(patch(master, index * 64 + 32, 32), TOY_EXPECTED[cmyk_value], tol=4), cmyk_value
    # ignoring the embedded profile (libvips' built-in CMYK instead) would look clearly different
    builtin = pyvips.Image.new_from_file(str(path)).icc_transform("srgb", input_profile="cmyk", intent="relative")
    assert mad(master, builtin.cast("uchar")) > 20
    assert not near(patch(builtin, 64 + 32, 32), (0, 255, 255), tol=30)  # built-in cyan is (0, 156, 228)-ish


def test_cmyk_without_profile_goes_through_the_builtin_cmyk_profile(tmp_path: Path) -> None:
    cmyk = flat_stripes(CMYK_PATCHES, "cmyk", "uchar")
    assert "icc-profile-data" not in cmyk.get_fields()
    cmyk.tiffsave(str(tmp_path / "plain-cmyk.tif"))
    converted, master, _ = convert(tmp_path / "plain-cmyk.tif")

    assert converted.notes == ("CMYK converted to sRGB",)
    assert (master.bands, master.interpretation) == (3, "srgb")
    expected = cmyk.icc_transform("srgb", input_profile="cmyk", intent="relative")
    assert mad(master, expected) < JPEG_MAD
    assert near(patch(master, 32, 32), (255, 255, 255))  # no ink is white
    assert max(patch(master, 4 * 64 + 32, 32)) < 60  # full black ink is dark


@pytest.mark.parametrize(("suffix", "depth"), [(".tif", 8), (".png", 8), (".tif", 16), (".png", 16)])
def test_rgb_profile_is_honoured_not_dropped(tmp_path: Path, suffix: str, depth: int) -> None:
    rgb = gradient()
    p3 = rgb.icc_transform("p3", depth=depth, intent="relative")  # Display P3 pixels, tagged with the P3 profile
    assert "icc-profile-data" in p3.get_fields()
    path = tmp_path / f"p3-{depth}{suffix}"
    if suffix == ".png":
        p3.pngsave(str(path), bitdepth=depth)
    else:
        p3.tiffsave(str(path))
    assert pyvips.Image.new_from_file(str(path)).format == ("ushort" if depth == 16 else "uchar")
    converted, master, _ = convert(path)

    assert converted.notes == ("embedded ICC profile converted to sRGB",)
    assert (master.bands, master.format, master.interpretation) == (3, "uchar", "srgb")
    assert mad(master, srgb_reference(path)) < JPEG_MAD
    assert mad(master, rgb) < 2 * JPEG_MAD  # back to the sRGB original
    raw = (p3 >> 8).cast("uchar") if depth == 16 else p3
    assert mad(master, raw) > 5  # what dropping the profile would show
    assert "icc-profile-data" not in master.get_fields()  # no stale P3 profile on sRGB pixels


def test_grey_profile_is_honoured(tmp_path: Path) -> None:
    grey = flat_stripes([(0,), (50,), (128,), (255,)], "b-w", "uchar")
    with_profile(grey, linear_grey_profile()).tiffsave(str(tmp_path / "linear-grey.tif"))
    _, master, _ = convert(tmp_path / "linear-grey.tif")

    assert (master.bands, master.interpretation) == (1, "b-w")
    expected = srgb_reference(tmp_path / "linear-grey.tif").colourspace("b-w")
    assert near(patch(expected, 64 + 32, 32), (122,), tol=2)  # linear 50/255 is sRGB 122
    assert mad(master, expected) < JPEG_MAD
    assert near(patch(master, 64 + 32, 32), (122,))
    assert "icc-profile-data" not in master.get_fields()


# --- EXIF orientation ---------------------------------------------------------------------------

W, H, CORNER = 300, 200, 40
RED, GREEN, GREY = (255, 0, 0), (0, 255, 0), (128, 128, 128)


def corners_image() -> pyvips.Image:
    """Grey, with a red square at the top left and a green one at the top right (as stored)."""
    image = (pyvips.Image.black(W, H, bands=3) + list(GREY)).cast("uchar")
    red = (pyvips.Image.black(CORNER, CORNER, bands=3) + list(RED)).cast("uchar")
    green = (pyvips.Image.black(CORNER, CORNER, bands=3) + list(GREEN)).cast("uchar")
    return image.insert(red, 0, 0).insert(green, W - CORNER, 0).copy(interpretation="srgb")


# Where the stored top-left (red) and top-right (green) corners must appear once displayed upright,
# per the EXIF definition: 3 = rotate 180°, 6 = rotate 90° clockwise, 8 = rotate 90° anticlockwise.
ORIENTATIONS = {
    3: ((W, H), ("bottom", "right"), ("bottom", "left")),
    6: ((H, W), ("top", "right"), ("bottom", "right")),
    8: ((H, W), ("bottom", "left"), ("top", "left")),
}


def corner_centre(size: tuple[int, int], where: tuple[str, str]) -> tuple[int, int]:
    half = CORNER // 2
    x = size[0] - half if where[1] == "right" else half
    y = size[1] - half if where[0] == "bottom" else half
    return x, y


@pytest.mark.parametrize(("orientation", "suffix"), [(3, ".jpg"), (6, ".jpg"), (8, ".jpg"), (6, ".tif")])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int, suffix: str) -> None:
    tagged = corners_image().copy()
    tagged.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    path = tmp_path / f"o{orientation}{suffix}"
    if suffix == ".jpg":
        tagged.jpegsave(str(path), Q=95)
    else:
        tagged.tiffsave(str(path))
    assert pyvips.Image.new_from_file(str(path)).get("orientation") == orientation
    converted, master, _ = convert(path)

    size, red_at, green_at = ORIENTATIONS[orientation]
    assert (master.width, master.height) == size == (converted.width, converted.height)
    assert converted.notes == (f"EXIF orientation {orientation} applied",)
    tol = 12  # chroma of small JPEG squares
    assert near(patch(master, *corner_centre(size, red_at)), RED, tol), "red corner misplaced"
    assert near(patch(master, *corner_centre(size, green_at)), GREEN, tol), "green corner misplaced"
    for where in (("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right")):
        if where not in (red_at, green_at):
            assert near(patch(master, *corner_centre(size, where)), GREY, tol), where
    # applied once, so the master must not ask viewers to rotate again
    fields = master.get_fields()
    assert "orientation" not in fields or master.get("orientation") == 1
    assert tiff_tags(master_path(path)).pop(0).get(274, 1) == 1  # TIFF Orientation tag


def master_path(source: Path) -> Path:
    return source.with_name(source.name + ".master.tif")


# --- 16-bit ---------------------------------------------------------------------------------------

LEVELS16 = [0, 1000, 16384, 32768, 65535]


def expected8(value16: int) -> int:
    return round(value16 * 255 / 65535)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_rgb_is_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    values = [(v, 65535 - v, v // 2) for v in LEVELS16]
    rgb16 = flat_stripes(values, "rgb16", "ushort")
    path = tmp_path / f"rgb16{suffix}"
    if suffix == ".png":
        rgb16.pngsave(str(path), bitdepth=16)
    else:
        rgb16.tiffsave(str(path))
    assert pyvips.Image.new_from_file(str(path)).format == "ushort"
    converted, master, _ = convert(path)

    assert converted.notes == ("16-bit scaled to 8-bit",)
    assert (master.bands, master.format, master.interpretation) == (3, "uchar", "srgb")
    for index, value in enumerate(values):
        expected = tuple(expected8(v) for v in value)
        assert near(patch(master, index * 64 + 32, 32), expected, tol=1.5), (value, expected)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grey_is_scaled_and_stays_one_band(tmp_path: Path, suffix: str) -> None:
    grey16 = flat_stripes([(v,) for v in LEVELS16], "grey16", "ushort")
    path = tmp_path / f"grey16{suffix}"
    if suffix == ".png":
        grey16.pngsave(str(path), bitdepth=16)
    else:
        grey16.tiffsave(str(path))
    converted, master, target = convert(path)

    assert converted.notes == ("16-bit scaled to 8-bit",)
    assert (master.bands, master.format, master.interpretation) == (1, "uchar", "b-w")
    assert tiff_tags(target)[0][PHOTOMETRIC] == MINISBLACK
    for index, value in enumerate(LEVELS16):
        assert near(patch(master, index * 64 + 32, 32), (expected8(value),), tol=1.5), value


# --- alpha ----------------------------------------------------------------------------------------


def rgba_source() -> pyvips.Image:
    """Colour gradient; alpha 255 on the left half, a ramp 0..254 over the right half."""
    rgb = gradient(512, 256)
    x = pyvips.Image.xyz(512, 256)[0]
    alpha = (x < 256).ifthenelse(255, (x - 256) * 254 / 255)
    return rgb.bandjoin(alpha.cast("uchar")).copy(interpretation="srgb")


def assert_alpha_master(master: pyvips.Image, target: Path, expected: pyvips.Image) -> None:
    """Alpha bit-exact, colour bit-exact wherever opaque, compression lossless."""
    colours = expected.bands - 1
    assert (master.bands, master.format) == (expected.bands, "uchar")
    assert master.interpretation == ("srgb" if colours == 3 else "b-w")
    alpha, expected_alpha = master[colours], expected[colours]
    assert (alpha.cast("int") - expected_alpha).abs().max() == 0
    opaque = (expected_alpha == 255) / 255  # 1 where opaque
    assert opaque.avg() > 0.4
    diff = (master.extract_band(0, n=colours).cast("int") - expected.extract_band(0, n=colours)).abs()
    assert (diff * opaque).max() == 0
    assert all(tags[COMPRESSION] in DEFLATE for tags in tiff_tags(target))


@pytest.mark.parametrize("depth", [8, 16])
def test_rgba_keeps_alpha_exactly_with_lossless_compression(tmp_path: Path, depth: int) -> None:
    rgba = rgba_source()
    if depth == 16:
        (rgba.cast("ushort") * 257).cast("ushort").copy(interpretation="rgb16").pngsave(
            str(tmp_path / "rgba.png"), bitdepth=16
        )
    else:
        rgba.pngsave(str(tmp_path / "rgba.png"))
    assert pyvips.Image.new_from_file(str(tmp_path / "rgba.png")).format == ("ushort" if depth == 16 else "uchar")
    converted, master, target = convert(tmp_path / "rgba.png")

    assert converted.bands == 4
    assert_alpha_master(master, target, rgba)  # 16-bit v*257 scales back to exactly v


@pytest.mark.parametrize("depth", [8, 16])
def test_grey_alpha_keeps_two_bands(tmp_path: Path, depth: int) -> None:
    rgba = rgba_source()
    grey_alpha = rgba[1].bandjoin(rgba[3]).copy(interpretation="b-w")
    if depth == 16:
        (grey_alpha.cast("ushort") * 257).cast("ushort").copy(interpretation="grey16").pngsave(
            str(tmp_path / "ga.png"), bitdepth=16
        )
    else:
        grey_alpha.pngsave(str(tmp_path / "ga.png"))
    converted, master, target = convert(tmp_path / "ga.png")

    assert converted.bands == 2
    assert_alpha_master(master, target, grey_alpha)


# --- resolution -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".jpg", ".png"])
def test_resolution_is_carried_over(tmp_path: Path, suffix: str) -> None:
    xdpi, ydpi = 300, 600  # unequal, so a swap would show
    source = gradient(400, 300).copy(xres=xdpi / 25.4, yres=ydpi / 25.4)
    source.write_to_file(str(tmp_path / f"dpi{suffix}"))
    _, master, target = convert(tmp_path / f"dpi{suffix}")

    assert master.xres == pytest.approx(xdpi / 25.4, rel=1e-3)
    assert master.yres == pytest.approx(ydpi / 25.4, rel=1e-3)
    with Image.open(target) as tiff:
        assert tiff.info["dpi"] == pytest.approx((xdpi, ydpi), rel=1e-3)
        assert tiff.tag_v2[RESOLUTION_UNIT] == INCH


# --- multi-page and pyramidal TIFFs -------------------------------------------------------------


def test_multi_page_tiff_is_refused(tmp_path: Path) -> None:
    page = gradient(300, 200)
    pages = pyvips.Image.arrayjoin([page, page.invert(), page], across=1)
    pages.tiffsave(str(tmp_path / "book.tif"), page_height=200)
    assert pyvips.Image.new_from_file(str(tmp_path / "book.tif")).get("n-pages") == 3

    with pytest.raises(ConvertError, match=r"multi-page TIFF \(3 pages\)"):
        convert(tmp_path / "book.tif")
    assert not master_path(tmp_path / "book.tif").exists()


@pytest.mark.parametrize("compression", ["deflate", "jpeg"])
def test_pyramidal_tiff_converts_from_its_full_resolution_page(tmp_path: Path, compression: str) -> None:
    source = gradient(901, 601)  # odd sizes: reduced levels are not exactly half
    source.tiffsave(
        str(tmp_path / "pyr.tif"), tile=True, pyramid=True, tile_width=128, tile_height=128, compression=compression
    )
    assert pyvips.Image.new_from_file(str(tmp_path / "pyr.tif")).get("n-pages") > 2
    converted, master, _ = convert(tmp_path / "pyr.tif")

    assert (converted.width, converted.height) == (901, 601)
    assert mad(master, source) < JPEG_MAD


# --- unreadable inputs ----------------------------------------------------------------------------


def write_unreadable(tmp_path: Path, kind: str) -> Path:
    if kind == "zero-byte":
        path = tmp_path / "empty.tif"
        path.write_bytes(b"")
    elif kind == "text-as-tif":
        path = tmp_path / "notes.tif"
        path.write_text("Biên bản kiểm kê\nnot an image\n", encoding="utf-8")
    elif kind == "random-png":
        path = tmp_path / "noise.png"
        path.write_bytes(random.Random(7).randbytes(20_000))
    else:  # truncated-jpg, truncated-png, truncated-tif: a good file cut at 60 %
        suffix = "." + kind.split("-")[1]
        good = tmp_path / f"good{suffix}"
        gradient(1500, 1200).write_to_file(str(good))
        data = good.read_bytes()
        path = tmp_path / f"cut{suffix}"
        path.write_bytes(data[: len(data) * 6 // 10])
    return path


@pytest.mark.parametrize(
    "kind", ["zero-byte", "text-as-tif", "random-png", "truncated-jpg", "truncated-png", "truncated-tif"]
)
def test_unreadable_input_raises_convert_error_with_one_line(tmp_path: Path, kind: str) -> None:
    source = write_unreadable(tmp_path, kind)
    with pytest.raises(ConvertError) as caught:
        convert(source)
    message = str(caught.value)
    assert message.strip() and "\n" not in message
    if kind in ("zero-byte", "text-as-tif", "random-png"):
        assert message.startswith("not a readable image")
        assert not master_path(source).exists()  # refused before anything was written
    # NB: a JPEG/PNG whose header reads but whose data is cut fails inside tiffsave and may leave a
    # partial target behind; the batch layer writes to a temporary name and deletes it.


# --- bounded memory on a large scan ---------------------------------------------------------------

BIG_W, BIG_H = 12_000, 10_000
RAW = BIG_W * BIG_H * 3  # 360 MB uncompressed

CHILD = """
import json, resource, sys, threading, time
from pathlib import Path
from iiif_server.ingest.convert import MasterOptions, to_master

peak = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0}
done = threading.Event()

def watch():
    while not done.is_set():
        with open("/proc/self/status") as status:
            for line in status:
                key = line.split(":")[0]
                if key in peak:
                    peak[key] = max(peak[key], int(line.split()[1]) * 1024)
        time.sleep(0.005)

watcher = threading.Thread(target=watch)
watcher.start()
started = time.monotonic()
converted = to_master(Path(sys.argv[1]), Path(sys.argv[2]), MasterOptions())
done.set()
watcher.join()
print(json.dumps({
    "width": converted.width,
    "height": converted.height,
    "seconds": time.monotonic() - started,
    "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "anon": peak["RssAnon"],
    "file": peak["RssFile"],
    "shmem": peak["RssShmem"],
}))
"""


@pytest.fixture(scope="module")
def big_scans(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A 12 000 × 10 000 baseline JPEG (Q90, scan-like smooth content) built lazily, and the same
    file with its EXIF orientation byte patched to 6 (so the 120 Mpx image is encoded only once)."""
    folder = tmp_path_factory.mktemp("big")
    xy = pyvips.Image.xyz(BIG_W, BIG_H)
    x, y = xy[0], xy[1]
    checks = ((x // 64 + y // 64) % 2) * 120 + (x % 64) + 20
    image = (x * 255 / BIG_W).bandjoin([y * 255 / BIG_H, checks]).cast("uchar").copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "orientation", 1)
    upright = folder / "big.jpg"
    image.jpegsave(str(upright), Q=90)
    data = upright.read_bytes()
    entry = b"\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00"  # little-endian IFD entry: Orientation, SHORT, 1, =1
    assert data.count(entry) == 1
    rotated = folder / "big-o6.jpg"
    rotated.write_bytes(data.replace(entry, entry[:8] + b"\x06\x00"))
    assert pyvips.Image.new_from_file(str(rotated)).get("orientation") == 6
    return {1: upright, 6: rotated}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("orientation", [1, 6])
def test_large_scan_converts_in_bounded_memory(big_scans: dict[int, Path], orientation: int) -> None:
    source = big_scans[orientation]
    target = source.with_suffix(".master.tif")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(target)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    size = (BIG_W, BIG_H) if orientation == 1 else (BIG_H, BIG_W)
    assert (measured["width"], measured["height"]) == size
    master = pyvips.Image.new_from_file(str(target))
    assert (master.width, master.height, master.get("n-pages")) == (*size, 7)

    # Private memory (heap, libvips buffers) stays well below the decoded image, upright or rotated.
    assert measured["anon"] < 0.6 * RAW, measured
    # Only private memory is asserted: the resident peak (ru_maxrss) also counts file-backed and shared
    # pages ("file", "shmem" in the failure message), which the kernel reclaims at will; it was
    # ~150 MB upright alone, up to 720 MB under a loaded CI run.
