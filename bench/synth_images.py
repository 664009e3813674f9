"""Synthesise the photo-like pyramidal TIFFs the benchmark serves.

The images are made, not downloaded (this machine reaches no image host), but they must *compress like
photographs*: a tile's JPEG size drives decode, copy and socket costs, so flat colour would flatter every
server. The recipe gives ~20 KB per 256-px tile at Q85: smooth multi-octave structure, a few soft-edged
shapes and colour drift (built at quarter resolution, where they are cheap, then upscaled), plus full-resolution
fine texture that comes and goes by region and a little luminance grain.

Everything is a lazy libvips pipeline streamed into ``tiffsave``, so memory stays bounded (~200 MB) even for
the 300-megapixel image.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyvips

#: Coarse structure is computed at 1/LOW_RES of full size: it is smooth, so upscaling loses nothing visible.
LOW_RES = 4
#: Tile geometry and codec of the masters, as heritage access copies are usually stored.
TIFF_OPTIONS = {
    "tile": True,
    "pyramid": True,
    "compression": "jpeg",
    "Q": 85,
    "tile_width": 256,
    "tile_height": 256,
}


def _octave(width: int, height: int, cell: int, seed: int) -> pyvips.Image:
    """One Perlin octave in about -1..1 (cell ≥ 2 px)."""
    return pyvips.Image.perlin(width, height, cell_size=max(2, cell), seed=seed)


def _fbm(width: int, height: int, seed: int, largest: int, smallest: int, decay: float = 0.6) -> pyvips.Image:
    """Fractal noise: octaves from ``largest`` down to ``smallest`` cells, each weaker by ``decay``.

    Natural scenes have roughly this falling power spectrum, which is what makes JPEG sizes photo-like.
    """
    total: pyvips.Image | None = None
    amplitude, cell, norm, octave = 1.0, largest, 0.0, 0
    while cell >= smallest:
        layer = _octave(width, height, cell, seed + octave) * amplitude
        total = layer if total is None else total + layer
        norm += amplitude
        amplitude *= decay
        cell //= 2
        octave += 1
    assert total is not None, "largest must be >= smallest"
    return total / norm


def _ellipses(base: pyvips.Image, rng: random.Random, count: int = 6) -> pyvips.Image:
    """Lay a few lighter or darker ellipses over ``base``: hard-ish edges, as objects give a photo."""
    xy = pyvips.Image.xyz(base.width, base.height)
    x, y = xy[0], xy[1]
    side = max(base.width, base.height)
    for _ in range(count):
        cx, cy = rng.uniform(0, base.width), rng.uniform(0, base.height)
        rx, ry = rng.uniform(0.05, 0.2) * side, rng.uniform(0.05, 0.2) * side
        dx, dy = (x - cx) / rx, (y - cy) / ry
        inside = (dx * dx + dy * dy) < 1
        base = inside.ifthenelse(base * rng.uniform(0.5, 0.8) + rng.uniform(0.1, 0.4), base)
    return base


def _low_frequency(width: int, height: int, seed: int) -> pyvips.Image:
    """Four float bands at 1/LOW_RES size: R, G, B in 0..255-ish, and a 0.3..1 texture mask."""
    w, h = width // LOW_RES + 2, height // LOW_RES + 2
    side = max(w, h)
    rng = random.Random(seed)
    lum = _fbm(w, h, seed, side // 2, 4) * 1.6 + 0.5
    lum = lum + pyvips.Image.xyz(w, h)[1] / h * 0.35 - 0.2  # light falls off towards the bottom
    lum = _ellipses(lum, rng)
    hue1 = _fbm(w, h, seed + 100, side // 2, 64)
    hue2 = _fbm(w, h, seed + 200, side // 2, 64)
    mix = pyvips.Image.new_from_list([[170, 60, 20], [160, -30, 40], [140, 10, -70]])
    rgb = lum.bandjoin([hue1, hue2]).recomb(mix)
    mask = _octave(w, h, 256, seed + 300) * 2 + 0.5
    mask = (mask > 1).ifthenelse(1, (mask < 0.3).ifthenelse(0.3, mask))
    return rgb.bandjoin(mask)


def photo_like(width: int, height: int, seed: int) -> pyvips.Image:
    """A lazy sRGB uchar image of ``width``×``height`` that JPEG-compresses like a photograph."""
    low = _low_frequency(width, height, seed).resize(LOW_RES, kernel="linear").crop(0, 0, width, height)
    rgb, mask = low.extract_band(0, n=3), low[3]
    texture = _octave(width, height, 3, seed + 400) * 0.6 + _octave(width, height, 7, seed + 401) * 0.4
    grain = pyvips.Image.gaussnoise(width, height, sigma=9, mean=0, seed=seed + 7)
    out = rgb + (texture * mask * 260 + grain)
    return out.cast("uchar").copy(interpretation="srgb")


def build(path: Path, width: int, height: int, seed: int) -> None:
    """Write a JPEG-compressed 256-px-tiled pyramidal TIFF atomically (a killed build leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.tif")
    try:
        photo_like(width, height, seed).tiffsave(str(partial), **TIFF_OPTIONS)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
