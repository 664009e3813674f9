"""Request budgets over real HTTP against a real gunicorn (issue 11): limits after rotation, the
memory budget, decoded pixels of a file without a pyramid, encoder limits, HEAD without a render.

Every refusal must come at once (before any pixel is decoded), as a one-line 400 saying what to
ask instead, and never be logged as a broken file."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest
import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.image.plan import rotated_size
from tests.conftest import block_colour, decode, make_pattern, pixel, save_pyramid

ENV = {
    "IIIF_SERVER_IMAGES_MAX_AREA": "4000000",
    "IIIF_SERVER_IMAGES_MAX_REQUEST_MB": "112",  # GIF: (112 - 24 - 32 - 16 kept level) MB / 16 bytes = 2.6 MP
    "IIIF_SERVER_IMAGES_MAX_DECODE_PIXELS": "50000000",
    "IIIF_SERVER_LANES_HEAVY_PIXELS": "0",
}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("budgets") / "images"
    root.mkdir()
    save_pyramid(make_pattern(3000, 2000), root / "mid.tif", compression="jpeg")
    save_pyramid(make_pattern(20000, 300), root / "wide.tif", compression="jpeg")
    flat = pyvips.Image.black(12000, 12000, bands=3).copy(interpretation="srgb")  # 144 MP, one level
    flat.tiffsave(str(root / "flat.tif"), tile=True, pyramid=False, compression="jpeg")
    return root


@pytest.fixture(scope="module")
def server(images: Path) -> Iterator[tuple[str, Path]]:
    log = images.parent / "server.log"
    with running_server(["serve", "--images", str(images), "--workers", "1"], free_port(), ENV, log=log) as base:
        yield base, log


def _get(url: str, method: str = "GET", timeout: float = 30) -> tuple[int, Message, bytes, float]:
    """Status, headers (names in any case), body and seconds taken."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    return status, headers, body, time.perf_counter() - started


def _refused(url: str) -> str:
    status, headers, body, elapsed = _get(url)
    assert status == 400 and headers["Content-Type"].startswith("text/plain"), (status, body[:200])
    assert elapsed < 5  # refused before any work, not after a render
    text = body.decode()
    assert text.count("\n") == 1
    return text.strip()


def _broken(log: Path, name: str) -> list[str]:
    """The server's lines calling the file broken or refusing it (inspector / renderer)."""
    words = ("cannot render", "cannot read", "refusing")
    return [line for line in log.read_text().splitlines() if name in line and any(w in line for w in words)]


def test_limits_apply_to_the_output_after_rotation(server: tuple[str, Path]) -> None:
    base, _ = server
    message = _refused(base + "/iiif/3/mid.tif/full/^1900,1900/45/default.jpg")
    assert message == "size 1900x1900 (2687x2687 once rotated) exceeds maxArea 4000000"
    status, headers, body, _ = _get(base + "/iiif/3/mid.tif/full/max/45/default.jpg")
    image = decode(body)
    assert status == 200 and image.width * image.height <= 4_000_000
    assert (image.width, image.height) == rotated_size((1697, 1131), 45)  # max shrank to fit once rotated
    assert "/full/max/45/default.jpg>" in headers["Link"]
    assert pixel(image, image.width // 2, image.height // 2) != (255, 255, 255)  # the image, not background


def test_the_memory_budget_caps_max_and_refuses_larger_sizes(server: tuple[str, Path]) -> None:
    base, _ = server
    message = _refused(base + "/iiif/3/mid.tif/full/^1900,1900/0/default.gif")  # 3.6 MP, under maxArea
    assert message == (
        "a 1900x1900 gif would need about 127 MB to render (limit 112 MB per request); ask for a smaller size or jpg"
    )
    status, headers, body, _ = _get(base + "/iiif/3/mid.tif/full/max/0/default.gif")
    image = decode(body)
    assert status == 200 and 2_500_000 < image.width * image.height <= 40 * 2**20 // 16
    assert "/full/max/0/default.gif>" in headers["Link"]
    assert pixel(image, 10, 10) == pytest.approx(block_colour(0, 0), abs=12)  # JPEG tiles, 256 colours
    status, _, body, _ = _get(base + "/iiif/3/mid.tif/full/1900,/0/default.jpg")  # JPEG holds little
    assert status == 200 and decode(body).width == 1900


def test_a_file_without_a_pyramid_is_refused_by_decoded_pixels_but_its_tiles_are_served(
    server: tuple[str, Path],
) -> None:
    base, log = server
    for size in ("1000,", "max"):
        assert _refused(f"{base}/iiif/3/flat.tif/full/{size}/0/default.jpg") == (
            "this view would decode 144000000 pixels from the best available level (limit 50000000): "
            "the image has no smaller level; ask for a smaller region or ingest it as a pyramid"
        )
    status, _, body, _ = _get(base + "/iiif/3/flat.tif/5120,5120,512,512/512,/0/default.jpg")
    assert status == 200 and decode(body).width == 512 and max(pixel(decode(body), 100, 100)) < 8
    status, _, body, _ = _get(base + "/iiif/3/flat.tif/info.json")
    assert status == 200 and json.loads(body)["width"] == 12000  # the file is healthy
    assert not _broken(log, "flat.tif")


def test_encoder_limits_are_honoured_by_max_and_refused_before_rendering(server: tuple[str, Path]) -> None:
    base, log = server
    status, headers, body, _ = _get(base + "/iiif/3/wide.tif/0,0,20000,256/max/0/default.webp")
    image = decode(body)
    assert status == 200 and (image.width, image.height) == (16383, 209)  # WebP's 16383, not a 422
    assert "/0,0,20000,256/max/0/default.webp>" in headers["Link"]
    assert pixel(image, 5, 5) == pytest.approx(block_colour(0, 0), abs=12)
    assert _refused(base + "/iiif/3/wide.tif/0,0,20000,100/20000,/0/default.webp") == (
        "size 20000x100 exceeds the webp encoder's 16383 pixels a side; ask for a smaller size or another format"
    )
    status, _, body, _ = _get(base + "/iiif/3/wide.tif/0,0,20000,100/20000,/0/default.jpg")
    assert status == 200 and decode(body).width == 20000
    status, _, body, _ = _get(base + "/iiif/3/wide.tif/info.json")
    info = json.loads(body)
    assert info["maxWidth"] == 65500 and all(max(s["width"], s["height"]) <= 16383 for s in info["sizes"])
    assert not _broken(log, "wide.tif")


def _renders(port: int) -> float:
    """``iiif_renders_total`` from the server's /metrics (summed over its workers)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("iiif_renders_total "))


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_head_never_renders(images: Path, worker: str, request: pytest.FixtureRequest) -> None:
    """A HEAD costs a cached entry's length, or no Content-Length at all: never the image's render."""
    env = {**ENV, "IIIF_SERVER_SERVER_WORKER": worker}
    port = free_port()
    with running_server(["serve", "--images", str(images), "--workers", "1"], port, env):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        request.addfinalizer(connection.close)  # closed even when an assertion fails first
        path = "/iiif/3/mid.tif/full/max/0/default.png"  # 4 MP of PNG: a second or more to render
        renders = _renders(port)
        connection.request("HEAD", path)
        head = connection.getresponse()
        assert head.read() == b"" and head.status == 200
        assert _renders(port) == renders  # counted by the server, not timed: the machine may be busy
        assert head.getheader("Content-Length") is None and head.getheader("Transfer-Encoding") is None
        assert head.getheader("Content-Type") == "image/png" and head.getheader("ETag")
        connection.request("GET", path)  # the same connection: the HEAD's framing was right
        get = connection.getresponse()
        body = get.read()
        assert get.status == 200 and get.getheader("ETag") == head.getheader("ETag")
        assert decode(body).width == 2449
        assert _renders(port) == renders + 1
        connection.request("HEAD", path)  # now cached: its length is known
        cached = connection.getresponse()
        assert cached.read() == b"" and cached.getheader("Content-Length") == str(len(body))
        connection.request("HEAD", "/iiif/3/mid.tif/0,0,256,256/256,/0/default.jpg")  # a stored tile
        tile = connection.getresponse()
        assert tile.read() == b"" and int(tile.getheader("Content-Length") or 0) > 0
