"""Request budgets, in process: limits after rotation, encoder limits, decoded pixels, peak memory.

The HTTP side (a real gunicorn server) is in tests/test_budgets.py.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import pyvips
from flask.testing import FlaskClient

from iiif_server import create_app
from iiif_server.config import Settings
from iiif_server.errors import OverBudget, SizeNotAllowed
from iiif_server.image import budget
from iiif_server.image.budget import Budget, check, max_pixels, peak_bytes
from iiif_server.image.info import build_info
from iiif_server.image.model import ApiVersion, Format, ImageRequest, Limits
from iiif_server.image.parse import parse_path
from iiif_server.image.plan import Layout, Level, plan, resolve, rotated_size
from iiif_server.image.render import _rotate
from tests.conftest import decode

# one level of 60000², tiled: a few MB of JPEG on disk, 3.6 gigapixels decoded
FLAT = Layout(60000, 60000, (Level(1, 60000, 60000),), 256, 256)
PYRAMID = Layout(24000, 16000, tuple(Level(2**i, 24000 // 2**i, 16000 // 2**i) for i in range(7)), 256, 256)
DEFAULT = Settings().images
DEFAULT_LIMITS = Limits(DEFAULT.max_width, DEFAULT.max_height, DEFAULT.max_area)
DEFAULT_BUDGET = Budget(
    DEFAULT.max_request_mb * budget.MB, DEFAULT.max_decode_pixels, Settings().cache.decoded_levels_mb * budget.MB // 4
)


def _request(params: str) -> ImageRequest:
    request = parse_path(ApiVersion.V3, f"id/{params}")
    assert isinstance(request, ImageRequest)
    return request


def _prepare(params: str, layout: Layout, limits: Limits = DEFAULT_LIMITS, within: Budget = DEFAULT_BUDGET):
    """What ImageService._prepare does with the geometry: resolve (``max`` capped), plan, check."""
    request = _request(params)
    resolved = resolve(request, layout.width, layout.height, limits, max_pixels(within, request, layout))
    chosen = plan(request, resolved, layout)
    check(chosen, layout, within)
    return resolved, chosen


# -- rotation ---------------------------------------------------------------------------


def test_rotated_size_is_what_the_renderer_makes() -> None:
    rng = random.Random(11)
    cases = [(1, 1, Fraction(45)), (3000, 2000, Fraction(90)), (7, 5, Fraction(180)), (640, 480, Fraction(270))]
    cases += [(rng.randint(1, 2500), rng.randint(1, 2500), Fraction(rng.randint(1, 3599), 10)) for _ in range(150)]
    for width, height, degrees in cases:
        for fmt in (Format.JPG, Format.PNG):
            image = _rotate(pyvips.Image.black(width, height, bands=3), degrees, fmt)
            assert (image.width, image.height) == rotated_size((width, height), degrees), (width, height, degrees)


def test_limits_apply_after_rotation() -> None:
    with pytest.raises(SizeNotAllowed, match=r"10000x10000 \(14142x14142 once rotated\) exceeds maxArea"):
        _prepare("full/^10000,10000/45/default.jpg", Layout(6000, 4000, (Level(1, 6000, 4000),), 256, 256))
    resolved, _ = _prepare("full/^10000,10000/0/default.jpg", Layout(6000, 4000, (Level(1, 6000, 4000),), 256, 256))
    assert resolved.size == (10000, 10000)  # 100 MP exactly: allowed unrotated


@pytest.mark.parametrize("degrees", ["0", "30", "45", "90", "135.5", "!200", "333"])
def test_max_is_the_largest_size_whose_rotated_output_fits(degrees: str) -> None:
    limits = Limits(max_width=3000, max_area=4_000_000)
    layout = Layout(8000, 5000, (Level(1, 8000, 5000),), 256, 256)
    resolved, chosen = _prepare(f"full/max/{degrees}/default.jpg", layout, limits, Budget())
    angle = chosen.degrees
    sent = rotated_size(resolved.size, angle)
    assert max(sent) <= 3000 and sent[0] * sent[1] <= 4_000_000
    w, h = resolved.size
    bigger = rotated_size((w + 2, round(h * (w + 2) / w)), angle)  # two pixels wider no longer fits
    assert max(bigger) > 3000 or bigger[0] * bigger[1] > 4_000_000
    assert resolved.max_size == resolved.size  # written "max" in the canonical URL


# -- encoder limits and info.json -------------------------------------------------------


def test_max_honours_the_format_and_larger_sizes_are_refused_before_rendering() -> None:
    resolved, _ = _prepare("0,0,20000,256/max/0/default.webp", PYRAMID)
    assert resolved.size == (16383, 209)
    resolved, _ = _prepare("0,0,20000,256/max/0/default.jpg", PYRAMID)
    assert resolved.size == (20000, 256)
    resolved, _ = _prepare("full/max/0/default.webp", PYRAMID)
    assert resolved.size == (7865, 5243)  # the memory budget: WebP holds ~12 bytes a pixel
    with pytest.raises(SizeNotAllowed, match="exceeds the webp encoder's 16383 pixels a side"):
        _prepare("0,0,20000,256/20000,/0/default.webp", PYRAMID)
    with pytest.raises(SizeNotAllowed, match="exceeds maxWidth/maxHeight"):
        _prepare("0,0,20000,256/^70000,/0/default.png", PYRAMID, within=Budget())


def test_info_advertises_the_jpeg_limit_and_lists_sizes_every_format_can_make() -> None:
    panorama = Layout(40000, 2000, tuple(Level(2**i, 40000 // 2**i, 2000 // 2**i) for i in range(5)), 256, 256)
    info = build_info(ApiVersion.V3, "https://x.org/iiif/3/p", panorama, DEFAULT_LIMITS, 512)
    assert info["maxWidth"] == 65500 and "maxHeight" not in info  # maxHeight is maxWidth (Image API 3.0 §5.3)
    sizes = [(size["width"], size["height"]) for size in info["sizes"]]
    assert max(w for w, _ in sizes) == 10000 and (20000, 1000) not in sizes  # 20000 > WebP's 16383


# -- decoded pixels -----------------------------------------------------------------------


def test_a_file_without_a_pyramid_is_limited_by_the_pixels_a_view_decodes() -> None:
    with pytest.raises(OverBudget) as refused:
        _prepare("full/1000,/0/default.jpg", FLAT)
    assert str(refused.value) == (
        "this view would decode 3600000000 pixels from the best available level (limit 400000000): "
        "the image has no smaller level; ask for a smaller region or ingest it as a pyramid"
    )
    _prepare("0,0,512,512/512,/0/default.jpg", FLAT)  # a tile of it is served
    _prepare("20000,20000,10000,10000/1000,/0/default.jpg", FLAT)  # 100 MP of it too
    _, chosen = _prepare("full/1000,/0/default.jpg", PYRAMID)  # a pyramid reads a small level
    assert chosen.level == 4


def test_every_view_of_a_pyramid_within_max_area_fits_the_decode_budget() -> None:
    """Level choice keeps decoding under ~4x the output: the default budget is 4 x maxArea."""
    for width, height in ((19999, 19999), (24000, 16000), (39999, 9999)):
        levels = tuple(Level(2**i, width // 2**i, height // 2**i) for i in range(8))
        layout = Layout(width, height, levels, 256, 256)
        for params in ("full/max/0/default.jpg", "full/max/90/default.jpg", "full/5001,/0/default.jpg"):
            _prepare(params, layout)


# -- peak memory ------------------------------------------------------------------------


def test_max_is_capped_by_the_memory_budget_and_larger_sizes_are_refused() -> None:
    layout = Layout(6000, 4000, (Level(1, 6000, 4000), Level(2, 3000, 2000)), 256, 256)
    resolved, chosen = _prepare("full/max/0/default.gif", layout, within=Budget(128 * budget.MB))
    assert peak_bytes(chosen, layout, Budget(128 * budget.MB)) <= 128 * budget.MB
    assert resolved.size[0] * resolved.size[1] > (128 - 24 - 32) * budget.MB // 16 - 6000  # the largest that fits
    resolved, _ = _prepare("full/max/0/default.jpg", layout, within=Budget(128 * budget.MB))
    assert resolved.size == (6000, 4000)  # JPEG holds 2 bytes a pixel: 24 MP in 72 MB
    with pytest.raises(OverBudget, match=r"a 10000x10000 gif would need about 1597 MB to render \(limit 512 MB"):
        _prepare("full/^10000,10000/0/default.gif", layout)


def test_the_issues_gif_is_refused_at_once_with_the_default_settings(client: FlaskClient) -> None:
    response = client.get("/iiif/3/big.tif/full/^10000,10000/0/default.gif")
    assert response.status_code == 400
    assert response.data.decode().startswith("a 10000x10000 gif would need about")
    response = client.get("/iiif/3/pattern.tif/full/max/0/default.gif")  # within the budget
    assert response.status_code == 200 and decode(response.data).width == 1000


_PEAK = """
import json, sys
from pathlib import Path
from iiif_server.config import Settings
from iiif_server.image import render
from iiif_server.image.budget import peak_bytes
from iiif_server.image.model import ApiVersion
from iiif_server.image.parse import parse_path
from iiif_server.services import Services

def status(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
    return int(line.split()[1]) * 1024

root, target = sys.argv[1:]
settings = Settings().replace(images={"root": root, "max_request_mb": 0}, lanes={"heavy_pixels": 0})
service = Services(settings).image_service
render.ISOLATED_GIF_PIXELS = render.ISOLATED_AVIF_PIXELS = 10**12  # encode here: this process's peak is measured
prepared = service.prepare(parse_path(ApiVersion.V3, target))
Path("/proc/self/clear_refs").write_text("5")  # the peak from here on (VmHWM := VmRSS)
before = status("VmRSS:")
service.renderer.render(prepared.source, prepared.plan)
print(json.dumps([status("VmHWM:") - before, peak_bytes(prepared.plan, prepared.source.found.layout, service.budget)]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    [
        "noise.tif/full/^3000,/0/default.jpg",
        "noise.tif/full/^3000,/0/default.png",
        "noise.tif/full/^3000,/0/default.tif",
        "noise.tif/full/^3000,/0/default.webp",
        "noise.tif/full/1000,/0/default.gif",
        "noise.tif/full/1500,/0/default.avif",
        "noise.tif/full/1500,/45/default.avif",  # with alpha: libheif encodes it as a second picture
        "noise.png/full/max/!45/default.jpg",  # untiled, rotated: copied to memory first
    ],
)
def test_the_estimate_bounds_real_peak_memory_within_a_factor(tmp_path: Path, target: str) -> None:
    """Peak RSS of one render in a fresh process (VmHWM, reset before it) against ``peak_bytes``: never above it,
    and not so far below that the budget would refuse what it could afford."""
    width, height = 2000, 1500
    xy = pyvips.Image.xyz(width, height)
    noise = pyvips.Image.gaussnoise(width, height, sigma=60, mean=128)
    image = (xy[0] / 7).bandjoin([xy[1] / 5, noise]).cast("uchar").copy(interpretation="srgb")
    image.tiffsave(str(tmp_path / "noise.tif"), tile=True, pyramid=True, compression="jpeg", Q=90)
    image.pngsave(str(tmp_path / "noise.png"), compression=1)
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, str(tmp_path), target], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    real, estimate = json.loads(result.stdout)
    assert real <= estimate <= 6 * real, (real / budget.MB, estimate / budget.MB)


def test_refusals_are_not_logged_as_broken_files(
    settings: Settings, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    client = create_app(settings.replace(images={"max_decode_pixels": 1_000_000})).test_client()
    with caplog.at_level("INFO"):
        refused = client.get("/iiif/3/big.tif/full/max/0/default.jpg")
        webp = client.get("/iiif/3/big.tif/0,0,4000,100/^20000,/0/default.webp")
    assert refused.status_code == 400 and b"would decode 12000000 pixels" in refused.data
    assert b"ask for a smaller region or size" in refused.data  # big.tif has smaller levels
    assert webp.status_code == 400 and b"webp encoder" in webp.data
    assert not [record for record in caplog.records if record.levelname in ("WARNING", "ERROR")]
