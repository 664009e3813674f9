"""HTTP behaviour of the image endpoints (Image API 3.0 §6-7): headers, status codes, identifiers."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from iiif_server import create_app
from iiif_server.config import Settings
from tests.conftest import NFC_NAME, SUBFOLDER, decode

INFO = "/iiif/3/pattern.tif/info.json"
TILE = "/iiif/3/pattern.tif/0,0,256,256/256,/0/default.jpg"


def test_info_json_v3(client: FlaskClient) -> None:
    response = client.get(INFO, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.content_type == "application/json"
    info = response.get_json()
    assert info["id"] == "http://localhost/iiif/3/pattern.tif"
    assert (info["width"], info["height"]) == (1000, 800)
    assert info["tiles"][0]["width"] == 256  # the TIFF's own tile size
    assert response.headers["Link"] == '<http://iiif.io/api/image/3/level2.json>;rel="profile"'
    assert "Accept" in response.headers["Vary"]


def test_info_json_ld_when_asked(client: FlaskClient) -> None:
    response = client.get(INFO, headers={"Accept": "application/ld+json"})
    assert response.headers["Content-Type"] == 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
    response = client.get("/iiif/2/pattern.tif/info.json", headers={"Accept": "application/ld+json"})
    assert response.headers["Content-Type"] == 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"'
    assert response.get_json(force=True)["@id"] == "http://localhost/iiif/2/pattern.tif"


def test_base_uri_redirects_to_info(client: FlaskClient) -> None:
    response = client.get("/iiif/3/pattern.tif")
    assert response.status_code == 303
    assert response.headers["Location"] == "http://localhost/iiif/3/pattern.tif/info.json"
    encoded = quote(f"{SUBFOLDER}/{NFC_NAME}", safe="")
    response = client.get(f"/iiif/3/{encoded}")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/iiif/3/{encoded}/info.json")
    assert client.get("/iiif/3/missing.tif").status_code == 404


def test_image_headers(client: FlaskClient) -> None:
    response = client.get("/iiif/3/pattern.tif/pct:0,0,50,50/250,/0/default.png")
    assert response.status_code == 200
    assert response.content_type == "image/png"
    assert response.headers["Link"] == (
        '<http://localhost/iiif/3/pattern.tif/0,0,500,400/250,200/0/default.png>;rel="canonical", '
        '<http://iiif.io/api/image/3/level2.json>;rel="profile"'
    )
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    image = decode(response.data)
    assert (image.width, image.height) == (250, 200)


def test_equivalent_requests_share_an_etag(client: FlaskClient) -> None:
    one = client.get("/iiif/3/pattern.tif/full/max/0/default.jpg").headers["ETag"]
    two = client.get("/iiif/3/pattern.tif/0,0,1000,800/1000,800/0/default.jpg").headers["ETag"]
    other = client.get("/iiif/3/pattern.tif/full/max/0/gray.jpg").headers["ETag"]
    assert one == two != other


@pytest.mark.parametrize("url", [TILE, INFO])
def test_revalidation_gives_304(client: FlaskClient, url: str) -> None:
    first = client.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get(url, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200


def test_cors_everywhere_and_preflight(client: FlaskClient) -> None:
    for url in (INFO, TILE, "/iiif/3/missing/info.json", "/iiif/3/pattern.tif/full/max/0/default.bmp", "/nope"):
        assert (
            client.get(url, headers={"Origin": "https://viewer.example"}).headers["Access-Control-Allow-Origin"] == "*"
        )
    preflight = client.options(
        INFO,
        headers={
            "Origin": "https://v.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization"


def test_forwarded_headers_set_the_ids(settings: Settings) -> None:
    client = create_app(settings.replace(server={"trusted_proxies": ["127.0.0.1"]})).test_client()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "iiif.baotang.vn", "X-Forwarded-Prefix": "/anh"}
    info = client.get(INFO, headers=headers).get_json()
    assert info["id"] == "https://iiif.baotang.vn/anh/iiif/3/pattern.tif"
    link = client.get(TILE, headers=headers).headers["Link"]
    assert link.startswith("<https://iiif.baotang.vn/anh/iiif/3/pattern.tif/0,0,256,256/max/0/default.jpg>")


def test_configured_public_url_wins(settings: Settings) -> None:
    app = create_app(settings.replace(server={"public_base_url": "https://images.example.org/iiif-svc"}))
    info = app.test_client().get(INFO, headers={"X-Forwarded-Host": "evil.example"}).get_json()
    assert info["id"] == "https://images.example.org/iiif-svc/iiif/3/pattern.tif"


def test_without_proxy_hops_forwarded_headers_are_ignored(settings: Settings) -> None:
    app = create_app(settings.replace(server={"proxy_hops": 0, "trusted_proxies": ["127.0.0.1"]}))
    info = app.test_client().get(INFO, headers={"X-Forwarded-Host": "evil.example"}).get_json()
    assert info["id"] == "http://localhost/iiif/3/pattern.tif"


def test_limits_are_advertised_and_enforced(settings: Settings) -> None:
    client = create_app(settings.replace(images={"max_width": 300, "max_area": 0})).test_client()
    info = client.get(INFO).get_json()
    assert info["maxWidth"] == 300 and "maxArea" not in info
    assert all(size["width"] <= 300 for size in info["sizes"])
    image = decode(client.get("/iiif/3/pattern.tif/full/max/0/default.png").data)
    assert (image.width, image.height) == (300, 240)
    response = client.get("/iiif/3/pattern.tif/full/400,/0/default.png")
    assert response.status_code == 400 and b"maxWidth" in response.data


# -- identifiers --------------------------------------------------------------------------------

ENCODED_EXAMPLES = [
    quote(f"{SUBFOLDER}/{NFC_NAME}", safe=""),
    quote("odd name + #1.png", safe=""),
    "pattern%2Etif",  # an encoded unreserved character
]


@pytest.mark.parametrize("encoded", ENCODED_EXAMPLES)
def test_encoded_identifiers(client: FlaskClient, encoded: str) -> None:
    response = client.get(f"/iiif/3/{encoded}/info.json")
    assert response.status_code == 200
    assert response.get_json()["id"].startswith("http://localhost/iiif/3/")
    assert client.get(f"/iiif/3/{encoded}/full/64,/0/default.jpg").status_code == 200


def test_issue_example_identifier_form(client: FlaskClient) -> None:
    """The README's example shape: sub-folder, space, diacritics, all percent-encoded."""
    encoded = quote(f"{SUBFOLDER}/{NFC_NAME}", safe="")
    assert "%2F" in encoded and "%20" in encoded and "%E1%BA%B7" in encoded
    info = client.get(f"/iiif/3/{encoded}/info.json").get_json()
    assert info["id"] == f"http://localhost/iiif/3/{encoded}"
    assert (info["width"], info["height"]) == (600, 400)


TRAVERSAL = [
    ("..%2F..%2F..%2Fetc%2Fpasswd", 400),
    ("..%2Fsecret.png", 400),
    ("%2Fetc%2Fpasswd", 400),
    ("%252E%252E%252Fsecret.png", 404),  # double-encoded: decoded once only, so a literal odd name
    ("..%252Fsecret.png", 400),  # decoded once: one name starting with "." is refused
    ("..%255C..%255Csecret.png", 400),
    ("..%5Csecret.png", 400),
    ("pattern.png%00.tif", 400),
    ("escape.png", 404),
    ("escape", 404),
    ("notes.txt", 404),
    (".%2Fpattern.png", 400),
    ("%2E%2E%2Fsecret.png", 400),
]


@pytest.mark.parametrize(("identifier", "status"), TRAVERSAL)
def test_traversal_corpus_over_http(client: FlaskClient, identifier: str, status: int) -> None:
    for url in (
        f"/iiif/3/{identifier}/info.json",
        f"/iiif/3/{identifier}/full/max/0/default.png",
        f"/iiif/2/{identifier}/info.json",
    ):
        response = client.get(url)
        assert response.status_code == status, url
        assert response.content_type.startswith("text/plain")
        assert response.data.count(b"\n") == 1


def test_literal_double_slash_is_not_an_absolute_path(client: FlaskClient) -> None:
    response = client.get("/iiif/3//etc/passwd/info.json")
    assert response.status_code == 400 and response.content_type.startswith("text/plain")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/iiif/3/pattern.tif/full/full/0/default.jpg", 400),
        ("/iiif/3/pattern.tif/full/max/0/default.jp2", 400),
        ("/iiif/3/pattern.tif/5000,0,10,10/max/0/default.jpg", 400),
        ("/iiif/3/pattern.tif/full/2000,/0/default.jpg", 400),
        ("/iiif/3/nothing-here.tif/full/max/0/default.jpg", 404),
        ("/iiif/3/nothing-here.tif/info.json", 404),
        ("/iiif/3/corrupt.jpg/info.json", 422),
        ("/iiif/3/empty.png/full/max/0/default.jpg", 422),
        ("/iiif/3/truncated.tif/full/max/0/default.jpg", 422),
        ("/iiif/4/pattern.tif/info.json", 404),
    ],
)
def test_error_statuses_are_one_line_plain_text(client: FlaskClient, url: str, status: int) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.content_type == "text/plain; charset=utf-8"
    assert response.data.endswith(b"\n") and response.data.count(b"\n") == 1
    assert b"Traceback" not in response.data
    assert response.headers["Cache-Control"] == "no-store"


def test_unsupported_method(client: FlaskClient) -> None:
    assert client.post(TILE).status_code == 405


def test_status_page_lists_images(client: FlaskClient) -> None:
    page = client.get("/status").get_data(as_text=True)
    assert 'href="/iiif/3/pattern.tif/info.json"' in page
    assert quote(f"{SUBFOLDER}/", safe="") in page
    assert "notes.txt" not in page


def test_head(client: FlaskClient) -> None:
    response = client.head(TILE)
    assert response.status_code == 200 and response.data == b""
    assert response.content_type == "image/jpeg"


def test_info_json_matches_what_images_serve(client: FlaskClient) -> None:
    """Every size listed in info.json can be fetched at exactly that size."""
    info = json.loads(client.get("/iiif/3/big.tif/info.json").data)
    for size in info["sizes"]:
        image = decode(client.get(f"/iiif/3/big.tif/full/{size['width']},{size['height']}/0/default.jpg").data)
        assert (image.width, image.height) == (size["width"], size["height"])
