"""AVIF output (issue 13) over real HTTP against a real gunicorn, and its parsing, limits and budget in-process.

AVIF is rendered, never passed through (stored tiles are JPEG); it must decode to the asked size with the
same pixels as the JPEG of the same request, be advertised in info.json, and be refused at once beyond
what the AV1 encoder can write (16384 pixels a side)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message

import pytest
import pyvips
from flask.testing import FlaskClient

from iiif_server import create_app
from iiif_server.check import free_port, running_server
from iiif_server.config import Settings
from iiif_server.image import budget
from iiif_server.image.model import ApiVersion, Format, ImageRequest, Limits
from iiif_server.image.parse import parse_path
from iiif_server.image.plan import Layout, Level, resolve
from tests.conftest import block_colour, decode, make_pattern, pixel, save_pyramid


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("avif") / "images"
    root.mkdir()
    pattern = make_pattern(3000, 2000)
    texture = pyvips.Image.gaussnoise(3000, 2000, sigma=12, mean=0)  # some grain, as photographs have
    save_pyramid((pattern + texture).cast("uchar").copy(interpretation="srgb"), root / "mid.tif", "jpeg")
    save_pyramid(make_pattern(20000, 300), root / "wide.tif", compression="jpeg")
    env = {"IIIF_SERVER_OUTPUT_PREFERRED_FORMATS": "avif,jpg"}
    log = root.parent / "server.log"
    with running_server(["serve", "--images", str(root), "--workers", "1"], free_port(), env, log=log) as base:
        yield base


def _get(url: str) -> tuple[int, Message, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _mean_abs_diff(a: pyvips.Image, b: pyvips.Image) -> float:
    return float((a.cast("float") - b.cast("float")).abs().avg())


@pytest.mark.parametrize(
    "params", ["0,0,512,512/256,/0/default", "full/400,/0/default", "1024,768,256,256/256,/0/default"]
)
def test_avif_decodes_to_the_size_and_pixels_of_the_jpeg(server: str, params: str) -> None:
    status, headers, body = _get(f"{server}/iiif/3/mid.tif/{params}.avif")
    assert status == 200 and headers["Content-Type"] == "image/avif"
    assert body[4:12] == b"ftypavif"  # an AVIF file, not another format under its name
    _, jpeg_headers, jpeg_body = _get(f"{server}/iiif/3/mid.tif/{params}.jpg")
    avif, jpeg = decode(body), decode(jpeg_body)
    assert (avif.width, avif.height, avif.bands) == (jpeg.width, jpeg.height, 3)
    assert avif.width in (256, 400)
    assert _mean_abs_diff(avif, jpeg) < 4, _mean_abs_diff(avif, jpeg)
    assert headers["ETag"] and headers["ETag"] != jpeg_headers["ETag"]
    assert '/0/default.avif>;rel="canonical"' in headers["Link"]


def test_rotated_avif_keeps_transparency(server: str) -> None:
    status, _, body = _get(f"{server}/iiif/3/mid.tif/full/300,/45/default.avif")
    image = decode(body)
    assert status == 200 and image.bands == 4
    assert pixel(image, 0, 0)[3] == 0 and pixel(image, image.width // 2, image.height // 2)[3] == 255


def test_info_json_advertises_avif(server: str) -> None:
    info = json.loads(_get(f"{server}/iiif/3/mid.tif/info.json")[2])
    assert "avif" in info["extraFormats"] and info["preferredFormats"] == ["avif", "jpg"]
    info2 = json.loads(_get(f"{server}/iiif/2/mid.tif/info.json")[2])
    assert "avif" in info2["profile"][1]["formats"]
    status, headers, _ = _get(f"{server}/iiif/2/mid.tif/full/200,/0/default.avif")
    assert status == 200 and headers["Content-Type"] == "image/avif"


def test_avif_beyond_the_encoder_is_refused_at_once_and_max_is_capped(server: str) -> None:
    status, headers, body = _get(f"{server}/iiif/3/wide.tif/0,0,20000,100/16385,/0/default.avif")
    assert status == 400 and headers["Content-Type"].startswith("text/plain")
    assert body.decode() == (
        "size 16385x82 exceeds the avif encoder's 16384 pixels a side; ask for a smaller size or another format\n"
    )
    status, headers, body = _get(f"{server}/iiif/3/wide.tif/0,0,20000,100/max/0/default.avif")  # a child renders it
    image = decode(body)
    assert status == 200 and (image.width, image.height) == (
        16384,
        81,
    )  # 100 × 16384 / 20000, rounded down to stay within
    assert pixel(image, 50, 40)[:3] == pytest.approx(block_colour(0, 0), abs=12)
    jpeg = decode(_get(f"{server}/iiif/3/wide.tif/0,0,20000,100/16384,81/0/default.jpg")[2])  # JPEG's max: 20000
    assert _mean_abs_diff(image, jpeg) < 4


def test_avif_parses_in_both_versions() -> None:
    for version in ApiVersion:
        request = parse_path(version, "id/full/max/0/default.avif")
        assert isinstance(request, ImageRequest) and request.format is Format.AVIF
    assert Format.AVIF.media_type == "image/avif" and Format.AVIF.max_side == 16384


def test_the_memory_budget_caps_avif_below_jpeg() -> None:
    layout = Layout(20000, 20000, (Level(1, 20000, 20000),), 512, 512)
    small = budget.Budget(max_bytes=112 * budget.MB)
    requests = {fmt: parse_path(ApiVersion.V3, f"id/full/max/0/default.{fmt.value}") for fmt in Format}
    avif_cap = budget.max_pixels(small, requests[Format.AVIF], layout)  # type: ignore[arg-type]
    assert avif_cap == (112 - 24) * budget.MB // 44
    assert avif_cap < budget.max_pixels(small, requests[Format.JPG], layout)  # type: ignore[arg-type]
    resolved = resolve(requests[Format.AVIF], 20000, 20000, Limits(), avif_cap)  # type: ignore[arg-type]
    assert resolved.size[0] * resolved.size[1] <= avif_cap


def test_avif_settings_change_only_avif_etags(settings: Settings, client: FlaskClient) -> None:
    other = create_app(settings.replace(output={"avif_quality": 70})).test_client()
    for fmt in ("avif", "jpg"):
        first = client.get(f"/iiif/3/pattern.tif/full/100,/0/default.{fmt}")
        second = other.get(f"/iiif/3/pattern.tif/full/100,/0/default.{fmt}")
        assert (
            first.status_code == second.status_code == 200
            and first.mimetype == f"image/{'avif' if fmt == 'avif' else 'jpeg'}"
        )
        assert (first.headers["ETag"] != second.headers["ETag"]) is (fmt == "avif")
