"""The visible watermark of degraded renders (a restricted image's public view): pixels only.

A motif (the text, white with a dark shadow so it reads on light and dark scans, under the
museum's logo if one is set) is turned 30° and repeated on a square grid **anchored to the
image's own coordinates** (the canvas): a pixel's watermark depends only on where it is on the
canvas and on the output's scale, so the tiles a viewer assembles line up with each other and with
``full/w,`` at the same scale, and cropping a region cannot step around it. The grid's period is a
third of the canvas's long side at the output's scale (three motifs across the degraded view), never
below ``MIN_CELL`` output pixels, so a 200-px thumbnail still shows one legible motif.

Cheap by design: the motif is drawn once per worker, one cell per output scale is kept, and the
render pays only a tiled copy of that cell and a blend of the output (a few % of a 1000-px render).
"""

from __future__ import annotations

import hashlib
import html
import math
from pathlib import Path

import pyvips

from ..errors import ConfigError
from ..lru import LRU

ANGLE = -30.0  # the motif's rise, in degrees (libvips turns clockwise for positive angles)
REPEATS = 3  # motifs along the canvas's long side, whatever the output's size
MIN_CELL = 160  # output pixels: the smallest grid period, so small outputs stay legible
MAX_CELL = 1024  # the largest cell drawn (outputs sharper than this repeat it more often)
FILL = 0.85  # share of a cell the motif spans
_FONT = "sans bold 64"  # drawn large once, then reduced per cell
CELLS_BYTES = 16 * 2**20  # cells kept per worker (a 1024-px cell takes 5 MB, a 333-px one 0.5 MB)

Cell = tuple[pyvips.Image, pyvips.Image, pyvips.Image]  # colour, grey, mask


class Watermark:
    """``apply`` marks an output; ``tag`` names the settings, for ETags and cache keys."""

    def __init__(self, text: str, logo: bytes | None, opacity: float) -> None:
        self.text = text
        self.logo = logo
        self.opacity = opacity
        digest = hashlib.sha1(f"{text}\0{opacity}\0".encode() + (logo or b""))
        self.tag = digest.hexdigest()[:12]
        self._motif: pyvips.Image | None = None
        self._cells: LRU[int, Cell] = LRU(CELLS_BYTES, _cell_bytes)  # one per output scale in use

    @classmethod
    def from_settings(cls, text: str, logo_path: str, opacity: float) -> Watermark | None:
        """None when neither text nor logo is set; an unreadable logo stops start-up."""
        logo = None
        if logo_path:
            try:
                logo = Path(logo_path).read_bytes()
                _logo(logo)  # read now: a logo libvips cannot decode stops start-up, not a render
            except (OSError, pyvips.Error) as err:
                reason = err.strerror if isinstance(err, OSError) else "not an image libvips can read"
                raise ConfigError(f"[access] watermark_logo {logo_path!r}: {reason}") from None
        if not text.strip() and logo is None:
            return None
        return cls(text.strip(), logo, opacity)

    def __reduce__(self) -> tuple[type[Watermark], tuple[str, bytes | None, float]]:
        """Pickled as its settings (a render in a child process, ``isolated.py``); caches are redrawn."""
        return Watermark, (self.text, self.logo, self.opacity)

    def apply(
        self, image: pyvips.Image, origin: tuple[float, float], scale: float, canvas: tuple[int, int]
    ) -> pyvips.Image:
        """``image`` (8-bit sRGB or grey, any alpha kept) with the watermark blended in.

        ``origin``: where the image's top-left pixel lies on the canvas (full-resolution pixels);
        ``scale``: output pixels per canvas pixel; ``canvas``: the full image's width and height.
        """
        colour, grey, mask = self.cell(min(MAX_CELL, max(MIN_CELL, round(max(canvas) * scale / REPEATS))))
        side = mask.width
        ox, oy = round(origin[0] * scale) % side, round(origin[1] * scale) % side
        across, down = math.ceil((ox + image.width) / side), math.ceil((oy + image.height) / side)

        def tiled(cell: pyvips.Image) -> pyvips.Image:
            return cell.replicate(across, down).crop(ox, oy, image.width, image.height)

        own_alpha = image[image.bands - 1] if image.hasalpha() else None
        pixels = image.extract_band(0, n=image.bands - 1) if own_alpha is not None else image
        overlay = tiled(grey if pixels.bands == 1 else colour)
        # libvips' 8-bit blend (mask * colour + (255 - mask) * pixel) / 255: 3-4x faster than arithmetic
        marked = tiled(mask).ifthenelse(overlay, pixels, blend=True).copy(interpretation=pixels.interpretation)
        return marked.bandjoin(own_alpha) if own_alpha is not None else marked

    def cell(self, side: int) -> Cell:
        """One period of the grid, ready to blend: the motif reduced to fit, centred on a side×side
        square, as its colour, its grey (for grey outputs) and its mask (opacity included), apart:
        copying one-band and three-band images costs less than picking bands of one image."""
        kept = self._cells.get(side)
        if kept is not None:
            return kept
        motif = self._motif or self._draw()
        self._motif = motif
        fit = FILL * side / max(motif.width, motif.height)
        small = motif.resize(fit, kernel="linear") if fit < 1 else motif
        left, top = (side - small.width) // 2, (side - small.height) // 2
        rgba = small.embed(left, top, side, side, background=[0, 0, 0, 0])
        colour = rgba.extract_band(0, n=3)
        mask = (rgba[3] * self.opacity).rint().cast("uchar")  # the motif's share of a pixel, out of 255
        cell = (colour.copy_memory(), colour.colourspace("b-w").copy_memory(), mask.copy_memory())
        self._cells.put(side, cell)
        return cell

    def _draw(self) -> pyvips.Image:
        """The motif, RGBA, large: the logo above the text, both turned by ``ANGLE``."""
        parts: list[pyvips.Image] = []
        if self.logo is not None:
            parts.append(_logo(self.logo))
        if self.text:
            parts.append(_text(self.text))
        width = max(part.width for part in parts)
        if len(parts) == 2:  # the logo no wider than half the text, centred above it
            logo, text = parts
            logo = logo.resize(min(1.0, text.width / 2 / logo.width))
            height = logo.height + text.height + 16
            motif = logo.embed((width - logo.width) // 2, 0, width, height, background=[0, 0, 0, 0])
            motif = motif.composite2(text, "over", x=(width - text.width) // 2, y=logo.height + 16)
        else:
            motif = parts[0]
        motif = motif.cast("uchar").copy(interpretation="srgb")
        return motif.rotate(ANGLE, background=[0, 0, 0, 0]).copy_memory()


def _text(text: str) -> pyvips.Image:
    """The text as RGBA: white letters over a dark shadow offset by a few pixels."""
    mask = pyvips.Image.text(html.escape(text), font=_FONT, dpi=72)  # escaped: libvips reads Pango markup
    pad = 4
    letters = mask.embed(0, 0, mask.width + pad, mask.height + pad)
    shadow = mask.embed(pad, pad, mask.width + pad, mask.height + pad)
    alpha = (letters > shadow).ifthenelse(letters, shadow)
    # white where the letters are, black in their shadow: the colour is the letters' own coverage
    return letters.bandjoin([letters, letters, alpha]).cast("uchar").copy(interpretation="srgb")


def _logo(data: bytes) -> pyvips.Image:
    """The logo as 8-bit sRGB with alpha (opaque if it has none)."""
    image = pyvips.Image.new_from_buffer(data, "")
    image = image.colourspace("srgb") if image.interpretation != "srgb" else image
    image = image.cast("uchar") if image.format != "uchar" else image
    if image.bands == 3:
        image = image.bandjoin(255)
    return image.extract_band(0, n=4)


def _cell_bytes(cell: Cell) -> int:
    return sum(image.width * image.height * image.bands for image in cell)
