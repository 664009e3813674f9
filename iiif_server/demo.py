"""Synthesise artefact-like demo images, so a fresh install has something real to zoom.

Every image is made by libvips from noise and geometry (no downloads): a
bronze drum face as a 10240×8192 JPEG-compressed pyramidal TIFF (the shape of
a real access master), a glazed jar as a plain JPEG, a seal with a transparent
background as PNG, and scans in sub-folders whose names carry spaces and
Vietnamese diacritics; and the scans of the demo collection in
``demo_collection/collection.csv`` (relic sites, artefacts with several views, a
stele, festival photographs, a four-page decree). Existing files are never
overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pyvips

Maker = Callable[[], pyvips.Image]


def _texture(width: int, height: int, cell: int, seed: int) -> pyvips.Image:
    """Perlin noise in 0..1, two octaves: mottling that still shows grain at full zoom."""
    coarse = pyvips.Image.perlin(width, height, cell_size=cell, seed=seed)
    fine = pyvips.Image.perlin(width, height, cell_size=max(4, cell // 16), seed=seed + 1)
    return (coarse * 0.75 + fine * 0.25 + 1) / 2


def _radius(width: int, height: int) -> pyvips.Image:
    """Distance of every pixel from the centre, normalised so the inscribed circle is 1."""
    xy = pyvips.Image.xyz(width, height) - [width / 2, height / 2]
    return (xy[0] ** 2 + xy[1] ** 2) ** 0.5 / (min(width, height) / 2)


def _colourise(shade: pyvips.Image, dark: list[float], light: list[float]) -> pyvips.Image:
    """Map a 0..1 shade onto a colour ramp."""
    return (shade * [b - a for a, b in zip(dark, light, strict=True)] + dark).cast("uchar").copy(interpretation="srgb")


def _label(image: pyvips.Image, text: str) -> pyvips.Image:
    """Stamp the file's title in a corner, where fonts exist; a missing font only loses the label."""
    try:
        mask = pyvips.Image.text(text, dpi=max(72, image.width // 12), font="sans")
    except pyvips.Error:
        return image
    margin = image.width // 40
    ink = mask.embed(margin, margin, image.width, image.height)
    bands = image.bands - (1 if image.hasalpha() else 0)
    colour = image.extract_band(0, n=bands)
    colour = (ink > 0).ifthenelse([245] * bands, colour, blend=True)
    return colour.bandjoin(image.extract_band(bands)) if image.hasalpha() else colour


def bronze_drum(width: int = 10240, height: int = 8192) -> pyvips.Image:
    """Top face of a Đông Sơn bronze drum: a star at the centre, decorated concentric bands.

    libvips trigonometry works in degrees; atan2 gives the angle in degrees too.
    """
    r = _radius(width, height)
    xy = pyvips.Image.xyz(width, height) - [width / 2, height / 2]
    angle = xy[1].math2(xy[0], "atan2")
    rings = ((r * 360 * 9).sin() + 1) / 2
    star = ((angle * 14).cos() + 1) / 2
    motif = ((angle * 360).sin() * (r * 360 * 40).sin() + 1) / 2
    patina = _texture(width, height, 256, 7)
    shade = (r < 0.12).ifthenelse(star * 0.6 + patina * 0.4, rings * 0.35 + motif * 0.25 + patina * 0.4)
    drum = _colourise(shade, [60, 45, 25], [190, 150, 80])  # cast to uchar clips any overshoot
    background = _colourise(_texture(width, height, 512, 3) * 0.3, [20, 20, 22], [70, 70, 75])
    return _label((r < 0.95).ifthenelse(drum, background), "Trống đồng Ngọc Lũ (demo)")


def glazed_jar(width: int = 3000, height: int = 2000) -> pyvips.Image:
    """A blue-and-white Chu Đậu jar against a studio backdrop."""
    xy = pyvips.Image.xyz(width, height)
    x = (xy[0] - width / 2) / (width / 2)
    y = xy[1] / height
    profile = (y * 180).sin() * 0.22 + 0.18
    body = (x.abs() < profile) & (y > 0.08) & (y < 0.95)
    glaze = _colourise(
        _texture(width, height, 64, 11) * 0.5 + ((y * 360 * 12).sin() + 1) * 0.25, [30, 60, 140], [235, 238, 245]
    )
    backdrop = _colourise(y * 0.5 + 0.3, [120, 110, 100], [230, 225, 215])
    return _label(body.ifthenelse(glaze, backdrop), "Bình gốm Chu Đậu (demo)")


def jade_seal(side: int = 1600) -> pyvips.Image:
    """A round jade seal, with transparent background (PNG with alpha)."""
    r = _radius(side, side)
    stone = _colourise(
        _texture(side, side, 96, 5) * 0.7 + ((r * 360 * 5).sin() + 1) * 0.15, [40, 110, 70], [170, 220, 180]
    )
    alpha = (r < 0.9).ifthenelse(255, 0).cast("uchar")
    return _label(stone.bandjoin(alpha).copy(interpretation="srgb"), "Ấn ngọc (demo)")


def stone_statue(width: int = 6000, height: int = 4500, seed: int = 13) -> pyvips.Image:
    """A Cham sandstone sculpture: an eroded figure silhouette in raking light."""
    xy = pyvips.Image.xyz(width, height)
    x = (xy[0] - width / 2) / (width / 2)
    y = xy[1] / height
    figure = ((x * 2.2) ** 2 + ((y - 0.3) * 5) ** 2 < 1) | ((x.abs() < (0.35 - (y - 0.5).abs() * 0.2)) & (y > 0.35))
    stone = _colourise(_texture(width, height, 128, seed) * 0.8 + x * 0.1 + 0.1, [110, 80, 55], [215, 180, 140])
    backdrop = _colourise(_texture(width, height, 1024, seed + 1) * 0.3, [25, 25, 28], [60, 60, 66])
    return figure.ifthenelse(stone, backdrop)


def brick_gate(width: int = 2400, height: int = 1600) -> pyvips.Image:
    """A citadel gate: staggered laterite bricks around an arched opening."""
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    row = (y / 60).floor()
    stagger = (row % 2) * 60
    brick = ((y % 60) < 54) & (((x + stagger) % 120) < 114)
    arch = ((x - width / 2).abs() < width * 0.15) & (y > height * 0.45) | (
        ((x - width / 2) ** 2 + (y - height * 0.45) ** 2) ** 0.5 < width * 0.15
    )
    laterite = _colourise(_texture(width, height, 48, 17), [120, 55, 30], [200, 120, 70])
    mortar = _colourise(_texture(width, height, 32, 19) * 0.4, [150, 145, 130], [200, 195, 180])
    shadow = _colourise(_texture(width, height, 256, 23) * 0.2, [10, 10, 12], [40, 38, 36])
    return arch.ifthenelse(shadow, brick.ifthenelse(laterite, mortar))


def stele(width: int = 1600, height: int = 2400, seed: int = 29) -> pyvips.Image:
    """A stone stele with rows of incised glyphs."""
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    in_text = (x > width * 0.1) & (x < width * 0.9) & (y > height * 0.1) & (y < height * 0.9) & ((y % 90) < 55)
    glyphs = in_text & (pyvips.Image.perlin(width, height, cell_size=24, seed=seed) > 0.25)
    stone = _colourise(_texture(width, height, 96, seed + 1), [95, 95, 100], [175, 172, 168])
    carved = _colourise(_texture(width, height, 64, seed + 2) * 0.3, [40, 40, 44], [80, 78, 76])
    return glyphs.ifthenelse(carved, stone)


def paper_page(seed: int, width: int = 1600, height: int = 2240) -> pyvips.Image:
    """A page of a royal decree: columns of ink on dó paper, with a red seal."""
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    column = ((x % 160) < 90) & (x > width * 0.12) & (x < width * 0.88) & (y > height * 0.08) & (y < height * 0.9)
    ink = column & (pyvips.Image.perlin(width, height, cell_size=20, seed=seed) > 0.2)
    seal = ((x - width * 0.7) ** 2 + (y - height * 0.75) ** 2) ** 0.5 < width * 0.09
    paper = _colourise(_texture(width, height, 128, seed + 1) * 0.5 + 0.5, [190, 165, 120], [240, 225, 190])
    red = _colourise(_texture(width, height, 32, seed + 2) * 0.5, [150, 20, 25], [210, 60, 55])
    black = _colourise(_texture(width, height, 16, seed + 3) * 0.3, [20, 18, 16], [60, 55, 50])
    return seal.ifthenelse(red, ink.ifthenelse(black, paper))


def festival_photo(seed: int, width: int = 2000, height: int = 1333) -> pyvips.Image:
    """A festival photograph: bright banners and a crowd, as colour noise bands."""
    bands = [pyvips.Image.perlin(width, height, cell_size=cell, seed=seed + i) for i, cell in enumerate((90, 60, 120))]
    colour = (bands[0].bandjoin([bands[1], bands[2]]) + 1) * 127.5
    sky = _colourise(pyvips.Image.xyz(width, height)[1] / height, [90, 140, 210], [200, 220, 240])
    crowd = pyvips.Image.xyz(width, height)[1] > height * 0.45
    return crowd.ifthenelse(colour.cast("uchar").copy(interpretation="srgb"), sky)


def _photo(n: int) -> pyvips.Image:
    return _label(festival_photo(60 + n), f"Lễ hội Tháp Bà, ảnh {n} (demo)")


def _page(n: int) -> pyvips.Image:
    return _label(paper_page(70 + n), f"Sắc phong, trang {n} (demo)")


def _jpeg(path: Path, image: pyvips.Image) -> None:
    image.jpegsave(str(path), Q=90)


def _pyramid(path: Path, image: pyvips.Image) -> None:
    image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", Q=85, tile_width=256, tile_height=256)


#: relative path -> (maker, writer); names as a museum's scans would have them.
DEMO_IMAGES: dict[str, tuple[Maker, Callable[[Path, pyvips.Image], None]]] = {
    "trong-dong-ngoc-lu.tif": (bronze_drum, _pyramid),
    "gom-chu-dau.jpg": (glazed_jar, _jpeg),
    "an-ngoc.png": (jade_seal, lambda p, im: im.pngsave(str(p))),
    "hien-vat/KH-HV-0101 mặt trước.tif": (lambda: _label(stone_statue(), "KH-HV-0101 mặt trước (demo)"), _pyramid),
    "Di tích Tháp Bà Ponagar/tháp chính.tif": (
        lambda: _label(stone_statue(4000, 5000, seed=21), "Tháp Bà Ponagar (demo)"),
        _pyramid,
    ),
    # the rest of the demo collection (demo_collection/collection.csv)
    "Di tích Tháp Bà Ponagar/tháp nam.jpg": (
        lambda: _label(stone_statue(1800, 2400, seed=31), "Tháp Nam (demo)"),
        _jpeg,
    ),
    "dien-khanh/cong-tien.tif": (lambda: _label(brick_gate(), "Cổng Tiền, thành Diên Khánh (demo)"), _pyramid),
    "hien-vat/KH-HV-0101 mặt sau.tif": (
        lambda: _label(stone_statue(1800, 2400, seed=41), "KH-HV-0101 mặt sau (demo)"),
        _pyramid,
    ),
    "hien-vat/KH-HV-0101 mặt bên.tif": (
        lambda: _label(stone_statue(1400, 2400, seed=43), "KH-HV-0101 mặt bên (demo)"),
        _pyramid,
    ),
    "hien-vat/KH-HV-0104-recto.tif": (lambda: _label(stele(seed=51), "KH-HV-0104 recto (demo)"), _pyramid),
    "hien-vat/KH-HV-0104-verso.tif": (lambda: _label(stele(seed=53), "KH-HV-0104 verso (demo)"), _pyramid),
    **{f"le-hoi/0{n}.jpg": (partial(_photo, n), _jpeg) for n in (1, 2, 3)},
    **{f"tu-lieu/sac-phong/00{n}.tif": (partial(_page, n), _pyramid) for n in (1, 2, 3, 4)},
}


def build_demo_images(root: Path, progress: Callable[[str], None] | None = None) -> list[str]:
    """Create the demo images that are missing under ``root``; returns those made."""
    made = []
    for name, (maker, write) in DEMO_IMAGES.items():
        target = root / name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial{target.suffix}")
        write(partial, maker())
        os.replace(partial, target)  # atomic: an interrupted first run leaves no half-written image
        made.append(name)
        if progress:
            progress(name)
    return made
