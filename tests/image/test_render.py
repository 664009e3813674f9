"""Rendering reads the right pyramid level (never the full image for a zoomed-out tile), keeps
whole decoded levels within a byte budget, uses shrink-on-load, and turns decoding failures into a
logged, per-image error."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import pyvips
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from iiif_server import create_app
from iiif_server.cache.memory import MemoryCache
from iiif_server.config import Settings
from iiif_server.errors import ClientGone, ImageDecodeError
from iiif_server.image import render as render_module
from iiif_server.image.inspector import Inspected, Inspector
from iiif_server.image.model import ApiVersion, ImageRequest, Limits
from iiif_server.image.parse import parse_path
from iiif_server.image.plan import plan, resolve
from iiif_server.image.render import EncodeOptions, Renderer
from iiif_server.image.service import ImageService
from iiif_server.image.sources import FileSource
from tests.conftest import block_colour, decode, make_pattern, pixel


class OpenSpy:
    """Records every pyvips file open the renderer makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        original = pyvips.Image.new_from_file

        def spy(path: str, **kwargs: Any) -> pyvips.Image:
            self.calls.append((path, kwargs))
            return original(path, **kwargs)

        monkeypatch.setattr(render_module.pyvips.Image, "new_from_file", staticmethod(spy))


@pytest.fixture
def fresh_client(settings: Settings) -> FlaskClient:
    """A new app, so layout and handle caches start empty."""
    return create_app(settings).test_client()


def test_zoomed_out_tile_reads_only_its_pyramid_page(
    fresh_client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_client.get("/iiif/3/big.tif/info.json")  # layout probed (headers only)
    spy = OpenSpy(monkeypatch)
    response = fresh_client.get("/iiif/3/big.tif/1024,1024,1024,1024/256,/0/default.png")  # png: no pass-through
    assert response.status_code == 200
    assert [kwargs.get("page") for _, kwargs in spy.calls] == [2]  # 4000 -> 1000: the scale-4 page, once
    spy.calls.clear()
    fresh_client.get("/iiif/3/big.tif/0,0,256,256/256,/0/default.jpg")
    assert spy.calls == []  # a stored tile: passed through, libvips never opens the file


def test_the_layout_is_resolved_once_and_travels_with_the_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pass-through and rendering work from the layout ``prepare`` resolved: they never look it up
    (or probe the file) again, even when the worker's layout cache has forgotten it meanwhile."""
    service: ImageService = create_app(settings.replace(cache={"memory_mb": 0, "disk_max_mb": 0})).extensions[
        "iiif_server"
    ]
    request = parse_path(ApiVersion.V3, "big.tif/1024,1024,1024,1024/256,/0/default.png")
    prepared = service.prepare(request)
    service.inspector = Inspector()  # forgets every layout: a lookup now would probe every level
    spy = OpenSpy(monkeypatch)
    image = decode(service.render(prepared))
    assert [kwargs.get("page") for _, kwargs in spy.calls] == [2]  # the level read, nothing probed
    assert (image.width, image.height) == (256, 256)


def test_subifd_pyramids_are_used(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    make_pattern(2000, 1600).tiffsave(
        str(tmp_path / "sub.tif"), tile=True, pyramid=True, subifd=True, tile_width=256, tile_height=256
    )
    client = create_app(settings.replace(images={"root": tmp_path})).test_client()
    info = client.get("/iiif/3/sub.tif/info.json").get_json()
    assert info["tiles"][0]["width"] == 256
    spy = OpenSpy(monkeypatch)
    image = decode(client.get("/iiif/3/sub.tif/full/500,/0/default.png").data)
    assert [kwargs.get("subifd") for _, kwargs in spy.calls] == [1]  # 2000 / 4 = 500: second sub-IFD
    assert (image.width, image.height) == (500, 400)
    assert pixel(image, 25 * 3 + 12, 25 * 5 + 12) == block_colour(3, 5)  # 100 px blocks at 1/4 scale


def test_jpeg_uses_shrink_on_load(fresh_client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_client.get("/iiif/3/pattern.jpg/info.json")
    spy = OpenSpy(monkeypatch)
    image = decode(fresh_client.get("/iiif/3/pattern.jpg/full/125,/0/default.png").data)
    assert [kwargs.get("shrink") for _, kwargs in spy.calls] == [8]
    assert all(kwargs.get("access") == "sequential" for _, kwargs in spy.calls)
    assert (image.width, image.height) == (125, 100)


def test_multipage_document_is_not_taken_for_a_pyramid(tmp_path: Path, settings: Settings) -> None:
    """Pages of equal size are a document: only the first page is the image."""
    page = make_pattern(400, 300)
    doc = page.join(page.invert(), "vertical").copy()
    doc.set_type(pyvips.GValue.gint_type, "page-height", 300)
    doc.tiffsave(str(tmp_path / "doc.tif"))
    client = create_app(settings.replace(images={"root": tmp_path})).test_client()
    info = client.get("/iiif/3/doc.tif/info.json").get_json()
    assert (info["width"], info["height"]) == (400, 300)
    image = decode(client.get("/iiif/3/doc.tif/full/200,/0/default.png").data)
    assert pixel(image, 25, 25) == block_colour(0, 0)


def test_decode_failure_is_logged_with_the_identifier(
    fresh_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="iiif_server.image.render"):
        response = fresh_client.get("/iiif/3/truncated.tif/full/max/0/default.jpg")
    assert response.status_code == 422
    assert any("truncated.tif" in record.getMessage() for record in caplog.records)
    assert fresh_client.get("/iiif/3/pattern.tif/full/50,/0/default.jpg").status_code == 200


def test_unexpected_errors_never_show_a_traceback(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(settings)

    def explode(*args: object) -> bytes:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app.extensions["iiif_server"].renderer, "render", explode)
    response = app.test_client().get("/iiif/3/pattern.tif/full/10,/0/default.jpg")
    assert response.status_code == 500
    assert response.data == b"internal server error\n"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_oversized_untiled_sources_are_refused_but_pyramids_served(settings: Settings) -> None:
    """A stream-decoded source over the limit would occupy a worker: refuse it, serve tiled ones."""
    client = create_app(settings.replace(images={"max_untiled_pixels": 500_000})).test_client()
    for identifier in ("pattern.png", "pattern.jpg", "pattern-strip.tif"):  # 800 000 px each
        response = client.get(f"/iiif/3/{identifier}/full/100,/0/default.jpg")
        assert response.status_code == 422
        assert b"pyramid" in response.data
    assert client.get("/iiif/3/pattern.tif/full/100,/0/default.jpg").status_code == 200
    assert client.get("/iiif/3/alpha.png/full/100,/0/default.png").status_code == 200  # 120 000 px


def test_tile_on_the_grid_is_the_stored_jpeg_pixel_identical(
    fresh_client: FlaskClient, image_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """big.tif is JPEG-compressed: a tile request on its grid answers with the stored bytes."""
    from iiif_server.image.passthrough import open_reader

    reader = open_reader(image_root / "big.tif")
    assert reader is not None
    for page, scale, col, row in [(0, 1, 3, 2), (1, 2, 1, 2), (2, 4, 2, 1)]:
        span = 256 * scale
        url = f"/iiif/3/big.tif/{col * span},{row * span},{span},{span}/256,256/0/default.jpg"
        monkeypatch.setattr(render_module, "_apply", lambda *a: pytest.fail("decoded"))
        response = fresh_client.get(url)
        monkeypatch.undo()
        assert response.status_code == 200 and response.content_type == "image/jpeg"
        level = reader.level(page=page)
        assert level is not None
        assert response.data == reader.jpeg(level, col, row)
        stored = pyvips.Image.new_from_file(str(image_root / "big.tif"), page=page).crop(col * 256, row * 256, 256, 256)
        served = decode(response.data)
        assert (served - stored).abs().max() == 0  # pixel-identical to decoding the tile
    reader.close()


@pytest.mark.parametrize(
    "url",
    [
        "/iiif/3/big.tif/0,0,256,256/256,256/0/default.png",  # another format
        "/iiif/3/big.tif/0,0,256,256/256,256/!0/default.jpg",  # mirrored
        "/iiif/3/big.tif/0,0,256,256/256,256/90/default.jpg",  # rotated
        "/iiif/3/big.tif/0,0,256,256/256,256/0/gray.jpg",  # another quality
        "/iiif/3/big.tif/128,0,256,256/256,256/0/default.jpg",  # off the grid
        "/iiif/3/big.tif/0,0,256,256/255,255/0/default.jpg",  # resampled
        "/iiif/3/pattern.tif/0,0,256,256/256,256/0/default.jpg",  # deflate tiles: nothing to pass through
    ],
)
def test_everything_else_is_rendered(fresh_client: FlaskClient, image_root: Path, url: str) -> None:
    from iiif_server.image.passthrough import open_reader

    reader = open_reader(image_root / "big.tif")
    assert reader is not None
    level = reader.level(page=0)
    assert level is not None
    response = fresh_client.get(url)
    assert response.status_code == 200
    assert response.data != reader.jpeg(level, 0, 0)
    reader.close()


def test_dimensions_for_manifests_open_each_file_once_and_agree_with_the_layout(
    image_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    source = FileSource(image_root, (".tif", ".jpg", ".png"))
    shared = MemoryCache(1 << 20)
    opened: list[str] = []
    real = pyvips.Image.new_from_file

    def counting(path: str, **options: Any) -> pyvips.Image:
        opened.append(path)
        return real(path, **options)

    monkeypatch.setattr(pyvips.Image, "new_from_file", counting)
    for name in ("big.tif", "pattern.jpg", "pattern.png"):
        located = source.locate(name)
        opened.clear()
        assert Inspector(metadata=shared).dimensions(located) == ((4000, 3000) if name == "big.tif" else (1000, 800))
        assert len(opened) == 1  # one header read, not a probe of every level
        opened.clear()
        assert Inspector(metadata=shared).dimensions(located) == (
            Inspector().layout(located).layout.width,
            Inspector().layout(located).layout.height,
        )
    opened.clear()
    Inspector(metadata=shared).dimensions(source.locate("big.tif"))
    assert opened == []  # another worker finds the size in the shared tier
    with pytest.raises(ImageDecodeError, match="too large to serve untiled"):
        Inspector(max_untiled_pixels=1000).dimensions(source.locate("pattern.png"))


@pytest.mark.parametrize(
    "path",
    [
        "pattern.tif/full/^12000,/0/default.jpg",  # tiled source: stopped in the encoder
        # untiled, rotated, under half the image (so not kept decoded): stopped while buffered in memory
        "pattern.png/0,0,600,600/^12000,/33/default.png",
    ],
)
def test_a_render_past_its_deadline_is_stopped_with_503(settings: Settings, path: str) -> None:
    client = create_app(
        settings.replace(server={"render_timeout": 0.05}, images={"max_area": 0, "max_request_mb": 0})
    ).test_client()
    response = client.get(f"/iiif/3/{path}")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"  # whole seconds, at least one
    assert response.headers["Cache-Control"] == "no-store"
    assert "took longer than 0.05 s" in response.get_data(as_text=True)
    # the same app renders the next request normally: nothing was left killed
    image = decode(client.get("/iiif/3/pattern.png/full/100,/0/default.png").data)
    assert (image.width, image.height) == (100, 80)
    assert pixel(image, 5, 5) == block_colour(0, 0)


# -- decoded levels kept between renders ------------------------------------------------------------------------------


def inspected(root: Path, identifier: str) -> Inspected:
    source = FileSource(root, (".tif",)).locate(identifier)
    return Inspected.of(source, Inspector().layout(source))


def render_params(renderer: Renderer, source: Inspected, params: str) -> bytes:
    request = parse_path(ApiVersion.V3, f"{source.identifier}/{params}")
    assert isinstance(request, ImageRequest)
    layout = source.found.layout
    return renderer.render(source, plan(request, resolve(request, layout.width, layout.height, Limits()), layout))


def test_a_whole_level_is_decoded_once_and_serves_the_next_sizes(
    image_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """full/900, then full/899, of big.tif: both read its 1000-px page, opened and JPEG-decoded once;
    the bytes are those of a renderer that keeps nothing."""
    source = inspected(image_root, "big.tif")
    keeping, plain = Renderer(EncodeOptions()), Renderer(EncodeOptions(), decoded_levels_bytes=0)
    spy = OpenSpy(monkeypatch)
    kept = [render_params(keeping, source, f"full/{w},/0/default.jpg") for w in (900, 899, 800)]
    assert [kwargs.get("page") for _, kwargs in spy.calls] == [2]
    assert kept == [render_params(plain, source, f"full/{w},/0/default.jpg") for w in (900, 899, 800)]
    assert len(spy.calls) == 4  # the renderer that keeps nothing opens the page for every size


def test_a_small_crop_of_a_level_is_read_from_the_file_and_not_kept(
    image_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under half of the level: decoding all of it would cost more than the crop needs."""
    source = inspected(image_root, "big.tif")
    renderer = Renderer(EncodeOptions())
    spy = OpenSpy(monkeypatch)
    for _ in range(2):
        image = decode(render_params(renderer, source, "0,0,2000,1500/450,/0/default.png"))  # 500×375 of 1000×750
        assert (image.width, image.height) == (450, 338)
    assert [kwargs.get("page") for _, kwargs in spy.calls] == [2, 2]


def test_kept_levels_stay_within_their_byte_budget(image_root: Path) -> None:
    """Levels of big.tif: 1000×750 (2.25 MB decoded), 500×375, 250×187. With 4 MB, only levels of at
    most 1 MB are kept, and never more than 4 MB in all."""
    source = inspected(image_root, "big.tif")
    renderer = Renderer(EncodeOptions(), decoded_levels_bytes=4 * 2**20)
    for width in (900, 450, 225, 120):
        render_params(renderer, source, f"full/{width},/0/default.jpg")
    kept = renderer._decoded
    assert sorted(key[2] for key in kept._data) == [3, 4]  # 500×375 and 250×187 (the 1000-px page is too big)
    assert kept.size == 500 * 375 * 3 + 250 * 187 * 3 <= kept.maxsize


def test_a_replaced_file_is_never_rendered_from_its_old_kept_level(tmp_path: Path) -> None:
    """The kept level is keyed by the file's fingerprint: a new master is decoded afresh."""
    make_pattern(400, 300).tiffsave(str(tmp_path / "swap.tif"), tile=True, pyramid=True, tile_width=64, tile_height=64)
    renderer = Renderer(EncodeOptions())
    before = decode(render_params(renderer, inspected(tmp_path, "swap.tif"), "full/150,/0/default.png"))
    assert pixel(before, 5, 5) == block_colour(0, 0)
    replacement = tmp_path / "new.tif"
    make_pattern(400, 300).invert().tiffsave(str(replacement), tile=True, pyramid=True, tile_width=64, tile_height=64)
    replacement.replace(tmp_path / "swap.tif")
    after = decode(render_params(renderer, inspected(tmp_path, "swap.tif"), "full/150,/0/default.png"))
    assert pixel(after, 5, 5) == tuple(255 - v for v in block_colour(0, 0))


# -- stopping: abandoned renders, GIFs in a process that can be killed -------------------------------------------------


def test_a_large_gif_renders_in_a_child_process_with_the_same_pixels(image_root: Path) -> None:
    source = inspected(image_root, "pattern.tif")
    assert render_module.ISOLATED_GIF_PIXELS < 1000 * 800  # so this one is made in a child process
    image = decode(render_params(Renderer(EncodeOptions()), source, "full/max/0/default.gif"))
    assert (image.width, image.height) == (1000, 800)
    for col, row in ((0, 0), (9, 7), (4, 3)):
        got, want = pixel(image, col * 100 + 50, row * 100 + 50)[:3], block_colour(col, row)
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 8, (col, row, got, want)


@pytest.mark.parametrize("path", ["full/^8000,6400/0/default.jpg", "full/^4000,3200/0/default.gif"])
def test_a_render_nobody_wants_any_more_stops_at_once(image_root: Path, path: str) -> None:
    """In libvips (eval callback) and in a child process alike: ClientGone within a fraction of a second."""
    source = inspected(image_root, "pattern.tif")
    request = parse_path(ApiVersion.V3, f"pattern.tif/{path}")
    assert isinstance(request, ImageRequest)
    chosen = plan(request, resolve(request, 1000, 800, Limits(max_area=0)), source.found.layout)
    counted = REGISTRY.get_sample_value("iiif_renders_abandoned_total") or 0.0
    started = time.monotonic()
    with pytest.raises(ClientGone):
        Renderer(EncodeOptions()).render(source, chosen, lambda: time.monotonic() - started > 0.2)
    assert time.monotonic() - started < 1.0
    assert REGISTRY.get_sample_value("iiif_renders_abandoned_total") == counted + 1


def test_a_large_avif_nobody_wants_stops_at_once(tmp_path: Path) -> None:
    """The AV1 encoder has no ``eval``: in this process a 3-megapixel AVIF of grainy content ran ~2 s past
    abandonment; in its child process (``ISOLATED_AVIF_PIXELS``) it is killed at once."""
    # 6.75 MP: at 3 MP the child rendered in ~0.25 s, which a loaded fast-tier run let finish before the
    # parent next looked at the abandonment (0.2 s), and the test failed once
    xy = pyvips.Image.xyz(3000, 2250)
    grain = pyvips.Image.gaussnoise(3000, 2250, sigma=40, mean=128)
    (xy[0] / 12).bandjoin([xy[1] / 9, grain]).cast("uchar").copy(interpretation="srgb").tiffsave(
        str(tmp_path / "grain.tif"), tile=True, pyramid=True, compression="jpeg"
    )
    source = inspected(tmp_path, "grain.tif")
    request = parse_path(ApiVersion.V3, "grain.tif/full/max/0/default.avif")
    assert isinstance(request, ImageRequest)
    chosen = plan(request, resolve(request, 3000, 2250, Limits()), source.found.layout)
    assert render_module.ISOLATED_AVIF_PIXELS < 3000 * 2250
    started = time.monotonic()
    with pytest.raises(ClientGone):
        Renderer(EncodeOptions()).render(source, chosen, lambda: time.monotonic() - started > 0.2)
    assert time.monotonic() - started < 1.0
