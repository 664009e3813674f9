"""The watermark on degraded renders (issue 12, docs/access.md "Watermarks").

Over real HTTP against gunicorn: a restricted image and a public twin of the same pixels, so the
restricted render can be compared with the unmarked one pixel by pixel; then the module in-process.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.config import AccessSettings, Settings
from iiif_server.errors import ConfigError
from iiif_server.image import watermark as wm
from iiif_server.image.watermark import Watermark
from tests.access_site import get, server_env
from tests.conftest import decode, make_pattern, save_pyramid

WIDTH, HEIGHT = 2400, 1800  # degraded: 1000 x 750
DEFAULT = AccessSettings()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("watermark") / "images"
    root.mkdir()
    pattern = make_pattern(WIDTH, HEIGHT)
    for name in ("open", "stele"):  # the same pixels: one public, one restricted
        save_pyramid(pattern, root / f"{name}.tif", compression="jpeg")
    (root.parent / "collection.csv").write_text(
        "inventory_no,title_vi,access,images\nR-1,Mở,public,open.tif\nR-2,Bia,restricted,stele.tif\n", encoding="utf-8"
    )
    return root


def _serve(images: Path, text: str) -> Iterator[str]:
    env = server_env(images.parent / "collection.csv", images.parent / "state", access_watermark_text=text)
    args = ["serve", "--images", str(images), "--workers", "1"]
    with running_server(args, free_port(), env, log=images.parent / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def server(images: Path) -> Iterator[str]:
    yield from _serve(images, DEFAULT.watermark_text)


@pytest.fixture(scope="module")
def other(images: Path) -> Iterator[str]:
    """The same collection, another watermark text."""
    yield from _serve(images, "Bảo tàng tỉnh — chỉ xem")


def image(base: str, path: str) -> pyvips.Image:
    status, _, body = get(base, path)
    assert status == 200, body
    return decode(body).cast("float")


def motif_mask(width: int, height: int, origin: tuple[int, int], scale: float) -> pyvips.Image:
    """Where the default watermark lies on a width×height output (1: motif, 0: clear), from the module."""
    mark = Watermark(DEFAULT.watermark_text, None, 1.0)
    black = pyvips.Image.black(width, height, bands=3).copy(interpretation="srgb").cast("uchar")
    return (mark.apply(black, origin, scale, (WIDTH, HEIGHT))[0] > 0).ifthenelse(1, 0)


def mean_diff(a: pyvips.Image, b: pyvips.Image, where: pyvips.Image) -> float:
    """Mean absolute difference over the pixels where ``where`` is 1."""
    diff = (a - b).abs().bandmean()
    return float((diff * where).avg() / max(where.avg(), 1e-9))


def test_a_degraded_full_view_carries_the_watermark(server: str) -> None:
    marked = image(server, "/iiif/3/stele.tif/full/max/0/default.jpg")
    plain = image(server, "/iiif/3/open.tif/full/1000,/0/default.jpg")  # the same pixels, public
    assert (marked.width, marked.height) == (plain.width, plain.height) == (1000, 750)
    mask = motif_mask(1000, 750, (0, 0), 1000 / WIDTH)
    assert 0.02 < mask.avg() < 0.3  # the motif covers part of the view, not all of it
    assert mean_diff(marked, plain, mask) > 25  # where the motif is, clearly changed
    assert mean_diff(marked, plain, 1 - mask) < 3  # elsewhere, the same picture


def test_a_degraded_tile_is_watermarked_and_lines_up_with_the_view(server: str) -> None:
    """A stored tile of a degraded image is no longer passed through: it is rendered, with the mark
    at the same place on the canvas as in the whole view at the same scale."""
    path = "/iiif/3/{}.tif/1024,0,1024,1024/256,/0/default.jpg"
    marked, plain = image(server, path.format("stele")), image(server, path.format("open"))
    mask = motif_mask(256, 256, (1024, 0), 0.25)
    assert mask.avg() > 0.02
    assert mean_diff(marked, plain, mask) > 25
    whole = image(server, "/iiif/3/stele.tif/full/600,/0/default.jpg").crop(256, 0, 256, 256)
    assert mean_diff(marked, whole, mask) < 6  # the tile is that part of the marked view


def test_public_images_are_unchanged_and_the_text_is_in_the_etag(server: str, other: str) -> None:
    for path in ("/iiif/3/open.tif/full/max/0/default.jpg", "/iiif/3/open.tif/0,0,256,256/256,/0/default.jpg"):
        first, second = get(server, path), get(other, path)
        assert first[1]["etag"] == second[1]["etag"] and first[2] == second[2]  # no mark, same bytes
        assert first[1]["cache-control"].startswith("public")
    degraded = "/iiif/3/stele.tif/full/max/0/default.jpg"
    first, second = get(server, degraded), get(other, degraded)
    assert first[0] == second[0] == 200
    assert first[1]["etag"] != second[1]["etag"]  # another text: another ETag, another cache entry
    assert (decode(first[2]).cast("float") - decode(second[2])).abs().avg() > 1  # and other pixels


# -- in process ------------------------------------------------------------------------------


def _flat(width: int, height: int, bands: int = 3) -> pyvips.Image:
    base = pyvips.Image.black(width, height, bands=bands) + 100
    return base.cast("uchar").copy(interpretation="srgb" if bands >= 3 else "b-w").copy_memory()


def test_the_mark_is_anchored_to_the_canvas() -> None:
    mark = Watermark("Bản xem trước", None, 0.5)
    whole = mark.apply(_flat(600, 450), (0, 0), 0.25, (WIDTH, HEIGHT))
    tile = mark.apply(_flat(256, 194), (1024, 1024), 0.25, (WIDTH, HEIGHT))  # an edge tile
    assert (whole.crop(256, 256, 256, 194) - tile).abs().max() == 0


@pytest.mark.parametrize("size", [200, 1000])
def test_small_and_large_outputs_both_show_a_motif(size: int) -> None:
    mark = Watermark("Bản xem trước", None, 0.5)
    scale = size / WIDTH
    out = mark.apply(_flat(size, round(HEIGHT * scale)), (0, 0), scale, (WIDTH, HEIGHT))
    cell = mark.cell(max(wm.MIN_CELL, round(WIDTH * scale / wm.REPEATS)))
    assert cell[2].width >= wm.MIN_CELL  # a thumbnail's motif is never shrunk below legibility
    assert 0.02 < ((out - 100).abs().bandmean() > 10).avg() / 255 < 0.4


def test_grey_and_alpha_outputs_keep_their_bands() -> None:
    mark = Watermark("x", None, 0.5)
    for bands in (1, 2, 3, 4):
        out = mark.apply(_flat(300, 300, bands), (0, 0), 0.5, (WIDTH, HEIGHT))
        assert (out.bands, out.format) == (bands, "uchar")
        if bands in (2, 4):
            assert out[bands - 1].min() == 100  # the image's own alpha is untouched


def test_a_logo_with_alpha_is_drawn(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    red = pyvips.Image.black(64, 64).new_from_image([200, 0, 0, 255]).cast("uchar")
    red.copy(interpretation="srgb").pngsave(str(logo))
    mark = Watermark.from_settings("", str(logo), 1.0)
    assert mark is not None
    out = mark.apply(_flat(500, 500), (0, 0), 0.5, (WIDTH, HEIGHT))
    reddish = (out[0] > 180) & (out[1] < 40)  # the logo's colour reached the output
    assert reddish.avg() > 0
    assert Watermark.from_settings("", "", 0.5) is None  # nothing set: no watermark
    with pytest.raises(ConfigError, match="watermark_logo"):
        Watermark.from_settings("x", str(tmp_path / "missing.png"), 0.5)
    with pytest.raises(ConfigError, match=r"access\.watermark_logo.*no such file"):  # before any worker starts
        Settings().replace(access={"watermark_logo": str(tmp_path / "missing.png")})
    with pytest.raises(ConfigError, match=r"access\.watermark_opacity"):
        Settings().replace(access={"watermark_opacity": 0})
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="watermark_logo"):
        Watermark.from_settings("x", str(tmp_path / "bad.png"), 0.5)


def test_markup_in_the_text_is_drawn_not_parsed_and_the_tag_follows_the_settings() -> None:
    odd = Watermark("<b>A & B</b>", None, 0.5)
    assert odd.cell(200)[2].width == 200  # libvips would fail on unescaped Pango markup
    tags = {Watermark(t, None, o).tag for t, o in (("a", 0.5), ("b", 0.5), ("a", 0.6))}
    assert len(tags) == 3
    copy = pickle.loads(pickle.dumps(odd))  # a render in a child process (isolated.py)
    assert (copy.text, copy.tag) == (odd.text, odd.tag)


def test_the_mark_costs_little_beside_a_1000px_render() -> None:
    """Min of N, as a ratio of CPU time (one libvips thread: other processes' load affects it least):
    the mark beside decoding, resizing and encoding a 1000-px view."""
    source = make_pattern(WIDTH, HEIGHT).copy_memory()
    noise = pyvips.Image.gaussnoise(WIDTH, HEIGHT, sigma=20)
    source = (source + noise).cast("uchar").copy(interpretation="srgb").copy_memory()  # JPEG-like content
    jpeg = source.jpegsave_buffer(Q=90)
    mark = Watermark(DEFAULT.watermark_text, None, DEFAULT.watermark_opacity)
    scale = 1000 / WIDTH
    mark.cell(round(WIDTH * scale / wm.REPEATS))  # drawn once per worker, not per render

    def render(marked: bool) -> float:
        start = time.process_time()
        image = pyvips.Image.thumbnail_buffer(jpeg, 1000)
        if marked:
            image = mark.apply(image, (0, 0), scale, (WIDTH, HEIGHT))
        image.jpegsave_buffer(Q=85)
        return time.process_time() - start

    threads = pyvips.concurrency_get()
    pyvips.concurrency_set(1)
    try:
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(15):  # interleaved, so a busy moment on a shared machine hits both
            for marked in (False, True):
                times[marked].append(render(marked))
    finally:
        pyvips.concurrency_set(threads)
    assert min(times[True]) / min(times[False]) < 1.2, times
