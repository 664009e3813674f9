"""``/oembed``: oEmbed 1.0 answers for this site's item and embed pages.

In-process details (every field, the maxwidth/maxheight arithmetic, 400/404/501, hostile URLs) on a
small export of its own; the real entry point (``iiif-server demo`` over HTTP, the demo drum) at the end.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import pyvips
from flask import Flask
from flask.testing import FlaskClient

from iiif_server import create_app
from iiif_server.config import Settings
from iiif_server.web import contentstate, embedcode, oembed, urls
from tests.conftest import decode, make_pattern, save_pyramid

SITE = "http://localhost"  # the test client's base URL
PUBLIC = "KH-HV-0001"
RESTRICTED = "KH-HV-0104"
TITLE_VI, TITLE_EN = "Trống đồng Ngọc Lũ", "Ngọc Lũ bronze drum"
DRUM_IMAGE = "hiện vật/trống đồng.tif"  # 1200 × 800
STELE_IMAGE = "hiện vật/bia đá.png"  # 300 × 900, restricted
LOOSE_IMAGE = "loose.png"  # under the root, in no record: public by default
DEGRADED = 150
HEADER = (
    "inventory_no,title_vi,title_en,object_type,heritage_rank,date,period,material,dimensions_cm,site,"
    "description_vi,description_en,access,rights,attribution_vi,attribution_en,images"
)
CC_BY = "http://creativecommons.org/licenses/by/4.0/"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    base = tmp_path_factory.mktemp("oembed")
    root = base / "images"
    (root / "hiện vật").mkdir(parents=True)
    save_pyramid(make_pattern(1200, 800), root / DRUM_IMAGE)
    make_pattern(300, 900).pngsave(str(root / STELE_IMAGE))
    make_pattern(200, 100).pngsave(str(root / LOOSE_IMAGE))
    rows = [
        HEADER,
        f"{PUBLIC},{TITLE_VI},{TITLE_EN},hiện vật,,,,đồng,,Kho,,,public,{CC_BY},Bảo tàng A,Museum A,{DRUM_IMAGE}",
        f"{RESTRICTED},Bia đá,Stele,hiện vật,,,,đá,,Kho,,,restricted,{CC_BY},,,{STELE_IMAGE}",
    ]
    export = base / "collection.csv"
    export.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Settings().replace(
        images={"root": root},
        server={"access_log": "off"},
        cache={"disk_dir": base / "cache"},
        manifests={"source": export, "state_dir": base / "state", "thumbnail_size": 400},
        access={"state_dir": str(base / "access"), "degraded_size": DEGRADED},
    )


@pytest.fixture(scope="module")
def app(site: Settings) -> Flask:
    return create_app(site)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


def ask(client: FlaskClient, url: str, **params: str) -> tuple[int, dict, dict]:
    response = client.get(urls.OEMBED, query_string={"url": url, **params})
    body = (
        response.get_json(silent=True) if response.mimetype == "application/json" else response.get_data(as_text=True)
    )
    return response.status_code, body, dict(response.headers)


class _Frames(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "iframe":
            self.frames.append(dict(attrs))


def frames(html: str) -> list[dict[str, str | None]]:
    parser = _Frames()
    parser.feed(html)
    return parser.frames


def test_an_item_page_gets_every_field(client: FlaskClient, site: Settings) -> None:
    status, body, headers = ask(client, f"{SITE}{urls.item_path(PUBLIC)}")
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "public, max-age=300"
    assert headers["Access-Control-Allow-Origin"] == "*"
    embed = f"{SITE}{urls.embed_path(PUBLIC)}"
    assert body == {
        "version": "1.0",
        "type": "rich",
        "html": embedcode.iframe(embed, TITLE_VI, 800, 600),
        "width": 800,
        "height": 600,
        "title": TITLE_VI,  # [site] default_language: vi
        "provider_name": site.manifests.provider_label_vi,
        "provider_url": site.manifests.provider_homepage,
        "cache_age": 300,
        "author_name": "Bảo tàng A",
        "thumbnail_url": f"{SITE}/iiif/3/{quote(DRUM_IMAGE, safe='')}/full/400,267/0/default.jpg",
        "thumbnail_width": 400,
        "thumbnail_height": 267,
    }
    (frame,) = frames(body["html"])
    assert frame["src"] == embed and frame["title"] == TITLE_VI


def test_the_thumbnail_is_an_image_of_that_size(client: FlaskClient) -> None:
    _, body, _ = ask(client, f"{SITE}{urls.item_path(PUBLIC)}", maxwidth="100")
    response = client.get(body["thumbnail_url"].removeprefix(SITE))
    assert response.status_code == 200
    image = decode(response.get_data())
    assert (image.width, image.height) == (body["thumbnail_width"], body["thumbnail_height"]) == (100, 67)


def test_the_page_language_carries_to_title_provider_and_embed(client: FlaskClient, site: Settings) -> None:
    status, body, _ = ask(client, f"{SITE}{urls.item_path(PUBLIC)}?lang=en&utm_source=x")
    assert status == 200
    assert body["title"] == TITLE_EN and body["author_name"] == "Museum A"
    assert body["provider_name"] == site.manifests.provider_label_en
    (frame,) = frames(body["html"])
    assert frame["src"] == f"{SITE}{urls.embed_path(PUBLIC)}?lang=en"  # other parameters dropped


@pytest.mark.parametrize(
    ("params", "frame", "thumb"),
    [
        ({"maxwidth": "640"}, (640, 480), (400, 267)),
        ({"maxwidth": "300"}, (300, 225), (300, 200)),
        ({"maxheight": "300"}, (400, 300), (400, 267)),
        ({"maxheight": "120"}, (160, 120), (180, 120)),
        ({"maxwidth": "250", "maxheight": "100"}, (133, 100), (150, 100)),
        ({"maxwidth": "5000", "maxheight": "5000"}, (800, 600), (400, 267)),  # never larger than the default
        ({"maxwidth": "1", "maxheight": "1"}, (1, 1), (1, 1)),
    ],
)
def test_maxwidth_and_maxheight_bound_frame_and_thumbnail(
    client: FlaskClient, params: dict[str, str], frame: tuple[int, int], thumb: tuple[int, int]
) -> None:
    status, body, _ = ask(client, f"{SITE}{urls.item_path(PUBLIC)}", **params)
    assert status == 200, body
    assert (body["width"], body["height"]) == frame
    assert (body["thumbnail_width"], body["thumbnail_height"]) == thumb
    assert f'width="{frame[0]}" height="{frame[1]}"' in body["html"]
    assert body["thumbnail_url"].endswith(f"/full/{thumb[0]},{thumb[1]}/0/default.jpg")


@pytest.mark.parametrize("size", [(1200, 800), (300, 900), (7, 5000), (5000, 7), (1, 1), (999, 1000)])
@pytest.mark.parametrize("limits", [(None, None), (1, None), (None, 1), (37, 53), (400, 10), (10, 400)])
def test_the_thumbnail_bound_keeps_within_every_limit(size: tuple[int, int], limits: tuple[int | None, ...]) -> None:
    width, height = size
    maxwidth, maxheight = limits
    bound = oembed.thumbnail_bound(width, height, 400, maxwidth, maxheight)
    scale = min(1.0, bound / max(width, height))  # as presentation.build.thumbnail scales
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    assert w <= (maxwidth or 400) and h <= (maxheight or 400) and max(w, h) <= 400


def test_a_restricted_record_is_embedded_with_a_degraded_thumbnail(client: FlaskClient) -> None:
    status, body, _ = ask(client, f"{SITE}{urls.item_path(RESTRICTED)}")
    assert status == 200, body
    assert (body["thumbnail_width"], body["thumbnail_height"]) == (50, DEGRADED)  # 300 × 900 within 150
    assert "author_name" not in body  # the record names no attribution
    response = client.get(body["thumbnail_url"].removeprefix(SITE))
    assert response.status_code == 200  # within what an anonymous visitor may see


@pytest.mark.parametrize(
    ("path", "src"),
    [
        (urls.embed_path(PUBLIC), urls.embed_path(PUBLIC)),
        (urls.embed_path(PUBLIC) + "?viewer=mirador", urls.embed_path(PUBLIC) + "?viewer=mirador"),
        (urls.image_embed_path(DRUM_IMAGE), urls.image_embed_path(DRUM_IMAGE)),
    ],
)
def test_embed_pages_are_answered(client: FlaskClient, path: str, src: str) -> None:
    status, body, _ = ask(client, SITE + path)
    assert status == 200, body
    (frame,) = frames(body["html"])
    assert frame["src"] == SITE + src
    assert body["title"] == TITLE_VI  # an image of a record: the record's title


def test_an_image_in_no_record_is_titled_by_its_name(client: FlaskClient) -> None:
    status, body, _ = ask(client, SITE + urls.image_embed_path(LOOSE_IMAGE))
    assert status == 200, body
    assert body["title"] == LOOSE_IMAGE and "author_name" not in body
    assert (body["thumbnail_width"], body["thumbnail_height"]) == (200, 100)  # never upscaled


def test_public_base_url_is_the_site_not_the_host_header(site: Settings) -> None:
    app = create_app(site.replace(server={"public_base_url": "https://museum.example/iiif-site"}))
    client = app.test_client()
    status, body, _ = ask(client, f"https://museum.example/iiif-site{urls.item_path(PUBLIC)}")
    assert status == 200, body
    assert frames(body["html"])[0]["src"] == f"https://museum.example/iiif-site{urls.embed_path(PUBLIC)}"
    assert body["thumbnail_url"].startswith("https://museum.example/iiif-site/iiif/3/")
    # the Host the client sends is no longer this site
    assert ask(client, f"{SITE}{urls.item_path(PUBLIC)}")[0] == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example/items/KH-HV-0001",  # another host
        "http://localhost:8080/items/KH-HV-0001",  # another port
        "https://localhost/items/KH-HV-0001",  # another scheme
        "http://localhost.evil.example/items/KH-HV-0001",
        f"{SITE}/items/KH-HV-9999",  # no such record
        f"{SITE}/items/KH-HV-0001/extra",
        f"{SITE}/items/",
        f"{SITE}/items",
        f"{SITE}/",
        f"{SITE}/search?q=trong",
        f"{SITE}/viewer?manifest=iiif/manifests/KH-HV-0001",
        f"{SITE}/iiif/manifests/KH-HV-0001",
        f"{SITE}/embed/image/",
        f"{SITE}/embed/image/no-such.tif",
        f"{SITE}/embed/image/../secret.png",  # path traversal
        f"{SITE}/embed/image/%2e%2e/secret.png",
        f"{SITE}/embed/image/hi%E1%BB%87n%20v%E1%BA%ADt/../../x.png",
        f"{SITE}/items/..%2F..%2Fetc%2Fpasswd",
        f"{SITE}/embed/image/%00.png",
    ],
)
def test_urls_not_of_an_embeddable_page_are_404(client: FlaskClient, url: str) -> None:
    status, body, headers = ask(client, url)
    assert status == 404, body
    assert headers["Content-Type"].startswith("text/plain") and body.count("\n") == 1
    assert body.startswith("url "), body  # the endpoint's reason, not a missing route's


@pytest.mark.parametrize(
    "url",
    [
        "",
        "javascript:alert(1)//localhost/items/KH-HV-0001",
        "data:text/html,<script>alert(1)</script>",
        "/items/KH-HV-0001",  # not absolute
        "//localhost/items/KH-HV-0001",
        "localhost/items/KH-HV-0001",
        "ftp://localhost/items/KH-HV-0001",
        " http://localhost/items/KH-HV-0001",
        "http://localhost/items/KH HV",
        "http://localhost\\@evil.example/items/KH-HV-0001",
        "http://user:pw@localhost/items/KH-HV-0001",
        "http://localhost:99999/items/KH-HV-0001",
        "http://[::1/items/x",
        "http://localhost/items/" + "A" * 3000,  # very long
    ],
)
def test_malformed_urls_are_400(client: FlaskClient, url: str) -> None:
    status, body, headers = ask(client, url)
    assert status == 400, body
    assert headers["Content-Type"].startswith("text/plain") and body.count("\n") == 1


def test_a_missing_url_is_400(client: FlaskClient) -> None:
    response = client.get(urls.OEMBED)
    assert response.status_code == 400
    assert "url" in response.get_data(as_text=True)


@pytest.mark.parametrize("value", ["abc", "-5", "0", "1.5", "", " 10", "1e3", "9" * 5000])
@pytest.mark.parametrize("name", ["maxwidth", "maxheight"])
def test_a_non_integer_maximum_is_400(client: FlaskClient, name: str, value: str) -> None:
    status, body, _ = ask(client, f"{SITE}{urls.item_path(PUBLIC)}", **{name: value})
    assert status == 400 and name in body and body.count("\n") == 1


@pytest.mark.parametrize("fmt", ["xml", "XML", "yaml"])
def test_formats_other_than_json_are_not_implemented(client: FlaskClient, fmt: str) -> None:
    status, body, headers = ask(client, f"{SITE}{urls.item_path(PUBLIC)}", format=fmt)
    assert status == 501
    assert headers["Content-Type"].startswith("text/plain") and body.count("\n") == 1


def test_the_title_is_escaped_in_the_html(site: Settings, tmp_path: Path) -> None:
    export = tmp_path / "collection.csv"
    hostile = '"><script>alert(1)</script>'
    line = f'X-1,"{hostile.replace(chr(34), chr(34) * 2)}",,hiện vật,,,,,,,,,public,{CC_BY},,,{LOOSE_IMAGE}'
    export.write_text(f"{HEADER}\n{line}\n", encoding="utf-8")
    client = create_app(site.replace(manifests={"source": export, "state_dir": tmp_path / "s"})).test_client()
    status, body, _ = ask(client, f"{SITE}{urls.item_path('X-1')}")
    assert status == 200, body
    assert body["title"] == hostile
    assert "<script>" not in body["html"]
    (frame,) = frames(body["html"])
    assert frame["title"] == hostile  # the attribute holds it, escaped


# --- the real entry point: `iiif-server demo` over HTTP -------------------------------------------------------


@pytest.fixture(scope="module")
def demo_server(demo_site: str) -> str:
    """The session's `iiif-server demo` (tests/web/conftest.py)."""
    return demo_site


def _get(url: str) -> tuple[int, Message, bytes]:
    """Status, headers (names in any case) and body of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_the_demo_drum_is_embedded_through_oembed(demo_server: str) -> None:
    item = f"{demo_server}{urls.item_path(PUBLIC)}"
    status, headers, data = _get(f"{demo_server}{urls.OEMBED}?{urlencode({'url': item, 'format': 'json'})}")
    assert status == 200, data
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "public, max-age=300"
    body = json.loads(data)
    embed = f"{demo_server}{urls.embed_path(PUBLIC)}"
    (frame,) = frames(body["html"])
    assert frame["src"] == embed
    assert body["html"] == embedcode.iframe(embed, TITLE_VI, body["width"], body["height"])
    assert body["title"] == TITLE_VI and body["type"] == "rich" and body["version"] == "1.0"
    status, headers, jpeg = _get(body["thumbnail_url"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    image = pyvips.Image.new_from_buffer(jpeg, "")
    assert (image.width, image.height) == (body["thumbnail_width"], body["thumbnail_height"])
    # the restricted stele is answered within its degraded size; a stranger's URL is not
    status, _, data = _get(f"{demo_server}{urls.OEMBED}?{urlencode({'url': item.replace(PUBLIC, RESTRICTED)})}")
    assert status == 200 and re.search(r"/full/\d+,\d+/0/default\.jpg$", json.loads(data)["thumbnail_url"])
    status, _, data = _get(f"{demo_server}{urls.OEMBED}?{urlencode({'url': 'http://evil.example/items/KH-HV-0001'})}")
    assert status == 404 and data.count(b"\n") == 1


def test_a_shared_view_on_the_item_url_is_carried_to_the_embed(client: FlaskClient) -> None:
    manifest = f"{SITE}/iiif/manifests/{PUBLIC}"
    shared = contentstate.encode(contentstate.View(manifest, f"{manifest}/canvas/1", (10, 20, 300, 200)))
    item = f"{SITE}{urls.item_path(PUBLIC)}?{urlencode({'iiif-content': shared})}"
    status, body, _ = ask(client, item)
    assert status == 200, body
    (frame,) = frames(body["html"])
    assert frame["src"] == f"{SITE}{urls.embed_path(PUBLIC)}?{urlencode({'iiif-content': shared})}"
    other = contentstate.encode(contentstate.View(f"{SITE}/iiif/manifests/{RESTRICTED}", f"{SITE}/x/canvas/1"))
    for value in (other, "not-a-content-state!"):
        status, body, _ = ask(client, f"{SITE}{urls.item_path(PUBLIC)}?{urlencode({'iiif-content': value})}")
        assert status == 400 and "iiif-content" in body, body
