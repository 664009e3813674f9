"""Downscaled renders are at least as faithful as the peer's (iipsrv 1.3, bilinear from the same level).

Faithful = SSIM against a Lanczos-3 reduction of the full-resolution image, as bench/run.py measures
issue 10's quality target, on a pyramid of the benchmark's own photo-like recipe (bench/synth_images.py),
at the scales of its checked sizes: ``full/1024,`` and ``full/777,`` of 20 000 px read from the
1250-px level are 0.82 and 0.62 of that level. And on sharp-edged content the filter must not be
soft: within 0.01 of Lanczos-3 reading the same level.
"""

from __future__ import annotations

import importlib.util
import urllib.request
from pathlib import Path

import pytest
import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.image.inspector import Inspected, Inspector
from iiif_server.image.model import ApiVersion, ImageRequest, Limits
from iiif_server.image.parse import parse_path
from iiif_server.image.plan import plan, resolve
from iiif_server.image.render import EncodeOptions, Renderer
from iiif_server.image.sources import FileSource
from tests.conftest import decode, save_pyramid

BENCH_SYNTH = Path(__file__).resolve().parents[2] / "bench" / "synth_images.py"
WIDTH, HEIGHT = 4096, 3072  # level 4 is 256 px wide
SCALED = [210, 159]  # 0.82 and 0.62 of level 4, as 1024 and 777 of the bench's 1250-px level


def ssim(a: pyvips.Image, b: pyvips.Image) -> float:
    """Mean SSIM on luma (Wang et al. 2004: Gaussian sigma 1.5, K1 0.01, K2 0.03), as bench/run.py computes it."""
    x, y = (im.colourspace("b-w")[0].cast("float") if im.bands >= 3 else im[0].cast("float") for im in (a, b))

    def blur(image: pyvips.Image) -> pyvips.Image:
        return image.gaussblur(1.5, precision="float", min_ampl=0.01)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((mx * my * 2 + c1) * (sxy * 2 + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))).avg())


def peer_bilinear(level: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """iipsrv 1.3's ``interpolate_bilinear``: output pixel (i, j) samples the level at (i·sx, j·sy), no prefilter.

    On the bench image this gives iipsrv's own SSIM to the 4th decimal (0.9424 / 0.9605 vs 0.9423 / 0.9605).
    """
    index = pyvips.Image.xyz(width, height) * [level.width / width, level.height / height]
    return level.mapim(index, interpolate=pyvips.Interpolate.new("bilinear"), extend="copy").cast("uchar")


def as_jpeg(image: pyvips.Image) -> pyvips.Image:
    """Both servers answer JPEG Q85: compare like with like."""
    return decode(image.jpegsave_buffer(Q=85))


def lanczos_reference(path: Path, width: int, height: int) -> pyvips.Image:
    full = pyvips.Image.new_from_file(str(path))
    return full.resize(width / full.width, vscale=height / full.height, kernel="lanczos3", gap=0.0).copy_memory()


def height_for(width: int) -> int:
    return (HEIGHT * width * 2 + WIDTH) // (2 * WIDTH)  # IIIF's w, rounds half up


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("synth_images", BENCH_SYNTH)
    assert spec is not None and spec.loader is not None
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    root = tmp_path_factory.mktemp("quality")
    synth.photo_like(WIDTH, HEIGHT, 3).tiffsave(str(root / "photo.tif"), **synth.TIFF_OPTIONS)
    return root


def render_full(root: Path, identifier: str, width: int) -> pyvips.Image:
    located = FileSource(root, (".tif",)).locate(identifier)
    source = Inspected.of(located, Inspector().layout(located))
    renderer = Renderer(EncodeOptions(jpeg_quality=85))
    layout = source.found.layout
    request = parse_path(ApiVersion.V3, f"{identifier}/full/{width},/0/default.jpg")
    assert isinstance(request, ImageRequest)
    chosen = plan(request, resolve(request, layout.width, layout.height, Limits()), layout)
    return decode(renderer.render(source, chosen))


@pytest.mark.parametrize("width", SCALED)
def test_a_downscale_is_at_least_as_faithful_as_the_peers(photo_root: Path, width: int) -> None:
    path = photo_root / "photo.tif"
    reference = lanczos_reference(path, width, height_for(width))
    ours = render_full(photo_root, "photo.tif", width)
    peer = as_jpeg(peer_bilinear(pyvips.Image.new_from_file(str(path), page=4), width, height_for(width)))
    assert (ours.width, ours.height) == (width, height_for(width))
    assert ssim(ours, reference) >= ssim(peer, reference)


def test_served_over_http_at_least_as_faithful_as_the_peers(photo_root: Path, tmp_path: Path) -> None:
    """The same through ``iiif-server serve``: the answer a client gets, from a real worker."""
    path = photo_root / "photo.tif"
    width = SCALED[0]
    peer = as_jpeg(peer_bilinear(pyvips.Image.new_from_file(str(path), page=4), width, height_for(width)))
    reference = lanczos_reference(path, width, height_for(width))
    args = ["serve", "--images", str(photo_root), "--workers", "1"]
    with running_server(args, free_port(), log=tmp_path / "server.log") as base:
        url = f"{base}/iiif/3/photo.tif/full/{width},/0/default.jpg"
        with urllib.request.urlopen(url, timeout=60) as response:
            served = decode(response.read())
    assert (served.width, served.height) == (width, height_for(width))
    assert ssim(served, reference) >= ssim(peer, reference)


def rings(width: int, height: int) -> pyvips.Image:
    """Sharp-edged content: concentric stripes of several periods, dark on light, a little grain."""
    xy = pyvips.Image.xyz(width, height)
    ink: pyvips.Image | None = None
    for cx, cy, radius, period in ((0.3, 0.4, 0.35, 9), (0.7, 0.6, 0.3, 23), (0.5, 0.2, 0.2, 61)):
        d = ((xy[0] - cx * width) ** 2 + (xy[1] - cy * height) ** 2) ** 0.5
        ring = (d < radius * width) & (((d / period) % 1) < 0.35)
        ink = ring if ink is None else ink | ring
    assert ink is not None
    grey = ink.ifthenelse(40, 210) + pyvips.Image.gaussnoise(width, height, sigma=4)
    return grey.bandjoin([grey * 0.95, grey * 0.85]).cast("uchar").copy(interpretation="srgb")


@pytest.mark.parametrize("width", [820, 620])
def test_sharp_edges_stay_sharp(tmp_path: Path, width: int) -> None:
    """A softer filter would score better on the photo-like pyramid and blur real edges: stay near Lanczos-3."""
    save_pyramid(rings(2000, 1500), tmp_path / "rings.tif", compression="jpeg")
    level = pyvips.Image.new_from_file(str(tmp_path / "rings.tif"), page=1)  # 1000 px: 0.82 and 0.62
    height = (1500 * width * 2 + 2000) // 4000
    reference = lanczos_reference(tmp_path / "rings.tif", width, height)
    lanczos3 = level.resize(width / level.width, vscale=height / level.height, kernel="lanczos3")
    ours = render_full(tmp_path, "rings.tif", width)
    assert ssim(ours, reference) >= ssim(as_jpeg(lanczos3.crop(0, 0, width, height)), reference) - 0.01
