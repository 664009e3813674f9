"""Issue 13, the embed pages' details in-process (the browser and real-server side is in
test_embed_browser.py): what the page hands its viewer, 404s, headers, escaping, restricted
records, Mirador. Before, /embed/... did not exist (404 for every one of these)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from iiif_server import create_app
from iiif_server.config import Settings
from iiif_server.web import contentstate, urls
from tests.conftest import make_pattern, save_pyramid

HOSTILE = '</script><script>alert(1)</script><img src=x onerror="alert(2)">&amp;'
EXPORT = (
    "inventory_no,title_vi,title_en,access,rights,attribution_vi,attribution_en,images\n"
    "R-1,Trống đồng,Bronze drum,public,http://creativecommons.org/licenses/by/4.0/,Bảo tàng,The museum,"
    "open.tif;page2.tif\n"
    "R-2,Bia đá,Stone stele,restricted,http://rightsstatements.org/vocab/InC/1.0/,Bảo tàng,,stele.tif\n"
    "R-3,Kho,Vault,internal,,,,vault.tif\n"
    f'R-4,"{HOSTILE.replace(chr(34), chr(34) * 2)}",,public,,"{HOSTILE.replace(chr(34), chr(34) * 2)}",,evil.tif\n'
    "R-5,Ấn ngọc,,public,,,,seal.tif\n"
)
DATA = re.compile(r'<script type="application/json" id="embed-data">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("embed")
    images = base / "images"
    images.mkdir()
    pattern = make_pattern(1200, 900)
    for name in ("open", "page2", "stele", "vault", "evil", "seal"):
        save_pyramid(pattern, images / f"{name}.tif", compression="jpeg")
    (base / "collection.csv").write_text(EXPORT, encoding="utf-8")
    return base


def _settings(base: Path, **site: Any) -> Settings:
    return Settings().replace(
        images={"root": base / "images"},
        server={"access_log": "off"},
        cache={"disk_dir": base / "cache"},
        manifests={"source": base / "collection.csv", "state_dir": base / "state"},
        access={"state_dir": str(base / "access")},
        site=site,
    )


@pytest.fixture(scope="module")
def app(site: Path) -> Flask:
    return create_app(_settings(site))


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


def _data(body: str) -> dict[str, Any]:
    found = DATA.search(body)
    assert found, body
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_a_record_embed_hands_the_viewer_each_canvas_info_json_and_its_assets(client: FlaskClient) -> None:
    response = client.get(urls.embed_path("R-1"))
    assert response.status_code == 200 and response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    data = _data(body)
    assert data["viewer"] == "openseadragon" and data["language"] == "vi"
    assert [c["info"] for c in data["canvases"]] == [
        "http://localhost/iiif/3/open.tif/info.json",
        "http://localhost/iiif/3/page2.tif/info.json",
    ]
    assert [c["id"] for c in data["canvases"]] == [f"http://localhost/iiif/manifests/R-1/canvas/{n}" for n in (1, 2)]
    assert data["canvases"][0]["width"] == 1200 and data["canvases"][0]["height"] == 900
    assert data["manifest"] == "http://localhost/iiif/manifests/R-1"
    assert data["item"] == "http://localhost/items/R-1" and data["formats"] == ["avif", "webp", "jpg"]
    assert data["start"] == {"canvas": 0, "region": None}
    # the caption: label, rights, attribution, the record link out of the frame
    assert '<h1 class="label" lang="vi">Trống đồng</h1>' in body
    assert (
        '<a href="http://creativecommons.org/licenses/by/4.0/" target="_blank" rel="noopener license">CC BY 4.0</a>'
        in body
    )
    assert '<span class="attribution">Bảo tàng</span>' in body
    assert '<a class="record" href="http://localhost/items/R-1" target="_top">Xem hồ sơ đầy đủ</a>' in body
    # page navigation for two canvases; every button a real <button> with a name
    assert "1 / 2" in body and 'data-action="next"' in body and 'data-action="previous"' in body
    buttons = re.findall(r"<button [^>]*>", body)
    assert len(buttons) == 7 and all('type="button"' in b for b in buttons)
    assert all("aria-label=" in b for b in buttons if "share" not in b)
    # no inline script, no inline handler: the scripts are fingerprinted assets
    scripts = re.findall(r"<script([^>]*)>", body)
    assert scripts == [' type="application/json" id="embed-data"', *[f' src="{s}"' for s in _scripts(body)]]
    assert not re.search(r"<[^>]+\son[a-z]+=", body)
    for src in [*_scripts(body), re.search(r'<link rel="stylesheet" href="([^"]+)"', body).group(1)]:  # type: ignore[union-attr]
        asset = client.get(src, headers={"Accept-Encoding": "gzip"})
        assert asset.status_code == 200 and asset.headers["Content-Encoding"] == "gzip"
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert len(gzip.decompress(asset.data)) > 1000
    assert [s.split("/")[-1].split(".")[0] for s in _scripts(body)] == ["openseadragon", "embed"]


def _scripts(body: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)"></script>', body)


def test_headers_let_any_site_frame_an_embed_under_a_strict_policy(client: FlaskClient) -> None:
    response = client.get(urls.embed_path("R-1"))
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:" and directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "*"
    theme = ":root{--primary:#7a2e1d;--accent:#c8963e}"
    assert f"<style data-openseadragon-mobile-css>{theme}</style>" in response.get_data(as_text=True)
    digest = base64.b64encode(hashlib.sha256(theme.encode()).digest()).decode()
    assert directives["style-src"] == f"'self' 'sha256-{digest}'"  # allowed by its hash: the same for every visitor
    assert "unsafe-inline" not in policy and "X-Frame-Options" not in response.headers
    assert response.headers["Cache-Control"] == "public, max-age=300"
    again = client.get(urls.embed_path("R-1"))
    assert again.headers["Content-Security-Policy"] == policy  # cached answers stay valid for everyone


def test_frame_ancestors_setting_limits_who_may_frame_and_formats_setting_reaches_the_viewer(site: Path) -> None:
    app = create_app(
        _settings(site, frame_ancestors=["https://museum.example", "'self'"], embed_formats=["webp", "jpg"])
    )
    with app.test_client() as client:
        for path in (urls.embed_path("R-1"), urls.image_embed_path("open.tif")):
            response = client.get(path)
            assert response.status_code == 200
            assert response.headers["Content-Security-Policy"].endswith(
                "; frame-ancestors https://museum.example 'self'"
            )
            assert _data(response.get_data(as_text=True))["formats"] == ["webp", "jpg"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (urls.embed_path("R-404"), "no published record 'R-404'"),
        (urls.embed_path("R-3"), "no published record 'R-3'"),  # hidden: not published
        (urls.image_embed_path("vault.tif"), "no image 'vault.tif'"),  # hidden image: as if missing
        (urls.image_embed_path("missing.tif"), "no image 'missing.tif'"),
        (urls.image_embed_path("sub/missing.tif"), "no image 'sub/missing.tif'"),
    ],
)
def test_what_is_not_published_is_a_one_line_404(client: FlaskClient, path: str, message: str) -> None:
    response = client.get(path)
    assert response.status_code == 404 and response.mimetype == "text/plain"
    assert response.get_data(as_text=True).strip() == message


def test_a_restricted_record_embeds_its_preview_tier_only(client: FlaskClient) -> None:
    for path in (urls.embed_path("R-2"), urls.image_embed_path("stele.tif")):
        body = client.get(path).get_data(as_text=True)
        data = _data(body)
        assert [c["info"] for c in data["canvases"]] == ["http://localhost/iiif/3/stele.tif~preview/info.json"]
        assert "stele.tif/info.json" not in body
        assert "Bản xem trước thu nhỏ (hạn chế truy cập)" in body
        assert "In Copyright" in body


def test_an_image_embed_names_its_record_or_else_its_file(client: FlaskClient) -> None:
    body = client.get(urls.image_embed_path("page2.tif") + "?lang=en").get_data(as_text=True)
    data = _data(body)
    assert data["canvases"] == [
        {
            "id": "http://localhost/iiif/3/page2.tif",
            "label": "Bronze drum",
            "width": 0,
            "height": 0,
            "info": "http://localhost/iiif/3/page2.tif/info.json",
        }
    ]
    assert data["manifest"] is None and 'data-action="share"' not in body and 'data-action="next"' not in body
    assert '<h1 class="label" lang="en">Bronze drum</h1>' in body and 'href="http://localhost/items/R-1"' in body


def test_a_hostile_label_is_text_everywhere(client: FlaskClient) -> None:
    body = client.get(urls.embed_path("R-4")).get_data(as_text=True)
    assert "<script>alert" not in body and "<img src=x" not in body and 'onerror="' not in body
    assert body.count("<script") == 3  # the data block and two assets
    escaped = (
        "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#34;alert(2)&#34;&gt;&amp;amp;"
    )
    assert f"<title>{escaped}</title>" in body
    assert '<span class="attribution">&lt;/script&gt;' in body
    assert json.loads(DATA.search(body).group(1))["viewer"] == "openseadragon"  # type: ignore[union-attr]


def test_language_from_the_query_or_the_site_default_with_fallback(client: FlaskClient, site: Path) -> None:
    assert '<h1 class="label" lang="en">Bronze drum</h1>' in client.get("/embed/R-1?lang=en").get_data(as_text=True)
    english = client.get("/embed/R-5?lang=en").get_data(as_text=True)
    assert '<h1 class="label" lang="en">Ấn ngọc</h1>' in english and "Zoom in" in english  # no English title
    assert '<html lang="vi">' in client.get("/embed/R-1?lang=xx").get_data(as_text=True)
    with create_app(_settings(site, default_language="en")).test_client() as other:
        assert "View the full record" in other.get("/embed/R-1").get_data(as_text=True)


def test_mirador_on_the_same_manifest(client: FlaskClient) -> None:
    response = client.get("/embed/R-1?viewer=mirador")
    body = response.get_data(as_text=True)
    data = _data(body)
    assert data["viewer"] == "mirador" and data["manifest"] == "http://localhost/iiif/manifests/R-1"
    assert [s.split("/")[-1].split(".")[0] for s in _scripts(body)] == ["mirador", "embed"]
    assert "style-src 'self' 'unsafe-inline'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]
    assert 'data-action="zoom-in"' not in body  # Mirador's own controls


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/embed/R-1?viewer=uv", "unknown viewer 'uv'"),
        (urls.image_embed_path("open.tif") + "?viewer=mirador", "viewer=mirador needs a manifest"),
        ("/embed/R-1?iiif-content=not-a-content-state!", "iiif-content is neither a URI nor content-state-encoded"),
        ("/embed/R-1?iiif-content=" + "A" * 9000, "iiif-content is longer than 8192 characters"),
    ],
)
def test_bad_parameters_are_one_line_400s(client: FlaskClient, path: str, message: str) -> None:
    response = client.get(path)
    assert response.status_code == 400 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert message in text and text.count("\n") <= 1


def _state(manifest: str, canvas: str = "", region: tuple[int, int, int, int] | None = None) -> str:
    return contentstate.encode(contentstate.View(manifest, canvas, region))


MANIFEST = "http://localhost/iiif/manifests/R-1"


@pytest.mark.parametrize(
    ("value", "start"),
    [
        (_state(MANIFEST, f"{MANIFEST}/canvas/2", (100, 50, 400, 300)), {"canvas": 1, "region": [100, 50, 400, 300]}),
        (
            _state(MANIFEST, f"{MANIFEST}/canvas/1", (1000, 800, 900, 900)),
            {"canvas": 0, "region": [1000, 800, 200, 100]},
        ),
        (_state(MANIFEST), {"canvas": 0, "region": None}),
        (f"{MANIFEST}/canvas/2", {"canvas": 1, "region": None}),  # a plain canvas URI
    ],
)
def test_a_content_state_opens_its_canvas_at_its_region(client: FlaskClient, value: str, start: dict[str, Any]) -> None:
    response = client.get(urls.embed_path("R-1"), query_string={"iiif-content": value})
    assert response.status_code == 200
    assert _data(response.get_data(as_text=True))["start"] == start


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            _state("http://localhost/iiif/manifests/R-2", "http://localhost/iiif/manifests/R-2/canvas/1"),
            "another manifest",
        ),
        (_state(MANIFEST, f"{MANIFEST}/canvas/9", (0, 0, 10, 10)), "a canvas this manifest does not have"),
        (_state(MANIFEST, f"{MANIFEST}/canvas/1", (5000, 0, 10, 10)), "outside the canvas"),
    ],
)
def test_a_content_state_of_another_view_is_a_one_line_400(client: FlaskClient, value: str, message: str) -> None:
    response = client.get(urls.embed_path("R-1"), query_string={"iiif-content": value})
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert response.get_data(as_text=True).count("\n") <= 1
