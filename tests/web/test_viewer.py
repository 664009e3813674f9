"""``/viewer``: Mirador 4 in headless Chromium against the real server (gunicorn in a subprocess).

The server is ``iiif-server demo`` on the demo images, and the manifest is one the server
builds from the demo collection export (``iiif_server/demo_collection/``): the whole path a
museum's visitor takes, from export row to tiles on screen.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import re
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Page, Request, Response

from iiif_server import create_app
from iiif_server.config import Settings
from iiif_server.web import contentstate, viewer

MANIFEST = "KH-HV-0101"  # the demo's Shiva statue: three views, pyramidal TIFFs
LABEL = "Shiva statue"  # Mirador's interface is in English: it shows the manifest label's "en" entry
FIRST_IMAGE = "hien-vat/KH-HV-0101 mặt trước.tif"
DEADLINE = 30.0
MIN_TILES = 4
# /iiif/3/{identifier}/{region}/{size}/{rotation}/{quality}.{format}: an image request, not info.json
IMAGE_REQUEST = re.compile(r"/iiif/3/[^/?#]+/[^/?#]+/[^/?#]+/[^/?#]+/[^/?#]+\.(?:jpg|png|webp)(?:$|\?)")


@pytest.fixture(scope="module")
def server(demo_site: str) -> str:
    """The session's `iiif-server demo` (tests/web/conftest.py)."""
    return demo_site


@pytest.fixture(scope="module")
def manifest_url(server: str) -> str:
    return f"{server}/iiif/manifests/{MANIFEST}"


def test_viewer_shows_the_manifest_and_loads_tiles(page: Page, server: str, manifest_url: str) -> None:
    statuses: dict[str, int] = {}  # url -> status of every /iiif/ response
    finished: set[str] = set()  # /iiif/ requests whose body arrived
    failed: list[str] = []

    def on_response(response: Response) -> None:
        if "/iiif/" in response.url:
            statuses[response.url] = response.status

    def on_finished(request: Request) -> None:
        if "/iiif/" in request.url:
            finished.add(request.url)

    def on_failed(request: Request) -> None:
        if "/iiif/" in request.url:
            failed.append(f"{request.url}: {request.failure}")

    def tiles_done() -> list[str]:
        return [u for u, s in statuses.items() if s == 200 and u in finished and IMAGE_REQUEST.search(u)]

    page.on("response", on_response)
    page.on("requestfinished", on_finished)
    page.on("requestfailed", on_failed)
    page.goto(f"{server}/viewer?manifest={quote(manifest_url, safe='')}", wait_until="load")

    # Mirador shows the manifest's label as the window title once it has fetched and parsed the manifest.
    page.get_by_text(LABEL, exact=True).first.wait_for(state="visible", timeout=DEADLINE * 1000)

    deadline = time.monotonic() + DEADLINE
    while len(tiles_done()) < MIN_TILES and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # lets Playwright deliver the network events meanwhile

    tiles = tiles_done()
    assert len(tiles) >= MIN_TILES, f"only {len(tiles)} tiles loaded within {DEADLINE:.0f}s: {sorted(statuses)}"
    info = f"{server}/iiif/3/{quote(FIRST_IMAGE, safe='')}/info.json"
    assert statuses.get(info) == 200, f"info.json not loaded: {statuses}"
    errors = {u: s for u, s in statuses.items() if s >= 400}
    assert not errors, f"IIIF requests answered with errors: {errors}"
    assert not failed, f"IIIF requests failed: {failed}"


def test_a_manifests_homepage_is_its_item_page(page: Page, server: str, manifest_url: str) -> None:
    """What a visitor who follows a manifest's ``homepage`` gets: the record's page in the catalogue,
    linking the manifest (no ``[manifests] item_homepage``; it used to be this viewer)."""
    with urllib.request.urlopen(manifest_url, timeout=30) as response:
        (homepage,) = json.loads(response.read())["homepage"]
    assert homepage["id"] == f"{server}/items/{MANIFEST}"
    page.goto(homepage["id"], wait_until="load")
    assert page.locator("h1").inner_text() == "Tượng thần Shiva"  # Vietnamese first
    assert page.locator(f'a[href="{manifest_url}"]').count() == 1


@pytest.mark.parametrize("base", ["", "https://museum.example/prefix"])
def test_viewer_resolves_a_manifest_path_against_the_public_base(settings: Settings, base: str) -> None:
    app = create_app(settings.replace(server={"public_base_url": base}))
    manifest = "iiif/manifests/KH%20HV%2F1"  # as a homepage link carries it (the query decoded once)
    page = app.test_client().get("/viewer", query_string={"manifest": manifest}).get_data(as_text=True)
    assert f'"manifestId": "{base or "http://localhost"}/{manifest}"' in page


def test_viewer_requires_a_manifest(client: FlaskClient) -> None:
    response = client.get("/viewer")
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).count("\n") == 1


@pytest.mark.parametrize(
    "manifest",
    [
        "javascript:alert(1)",
        " javascript:alert(1)",
        "data:application/json,{}",
        "//evil.example/m.json",
        "m.json",
        "iiif/manifests/",
        "iiif/manifests/..",
        "iiif/manifests/a/../../x",
        "iiif/manifests/a?b",
        "iiif/collections/top",
    ],
)
def test_viewer_refuses_other_urls(client: FlaskClient, manifest: str) -> None:
    response = client.get("/viewer", query_string={"manifest": manifest})
    assert response.status_code == 400
    assert response.mimetype == "text/plain"


def test_viewer_page_passes_the_manifest_to_mirador(client: FlaskClient) -> None:
    manifest = "https://example.org/iiif/manifests/a?x=1&y=</script>"
    response = client.get("/viewer", query_string={"manifest": manifest})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert manifest not in page  # escaped everywhere: "<" cannot close the script element
    assert json.dumps(manifest).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") in page
    config = re.search(r'<script type="application/json" id="viewer-config">(.*?)</script>', page, re.S)
    assert config and json.loads(config.group(1)) == {"window": {"manifestId": manifest}}
    scripts = re.findall(r'<script src="([^"]+)"></script>', page)
    assert [re.sub(r"\.[0-9a-f]{12}\.js$", ".js", s) for s in scripts] == [
        "/assets/mirador/mirador.min.js",
        "/assets/viewer/mirador-page.js",
    ]
    own = client.get(scripts[1]).get_data(as_text=True)
    assert "Mirador.viewer(" in own
    assert "Mirador.requestInfoResponse(" in own  # a new tier after an Auth 1.0 login: test_auth_viewers.py


def test_mirador_is_served_as_javascript_with_a_long_cache(client: FlaskClient) -> None:
    page = client.get("/viewer", query_string={"manifest": "/iiif/manifests/x"}).get_data(as_text=True)
    match = re.search(r'<script src="([^"]+)"', page)
    assert match
    response = client.get(match.group(1))
    try:
        assert response.status_code == 200
        assert response.mimetype == "text/javascript"
        assert response.cache_control.max_age is not None and response.cache_control.max_age >= 30 * 24 * 3600
        assert response.get_data().startswith(b"(function(")
        assert b"Mirador" in response.get_data()[:1000]
    finally:
        response.close()


# --- issue 13: Mirador through the assets, the page's frame policy, content state links ----------------------

VENDORED = Path(viewer.__file__).resolve().parent / "static" / "mirador" / "mirador.min.js"
README_SHA256 = re.compile(r"^\s+([0-9a-f]{64})$", re.M)


def _scripts(page: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)"></script>', page)


def test_the_fingerprinted_mirador_is_gzip_immutable_and_the_vendored_file(server: str) -> None:
    with urllib.request.urlopen(f"{server}/viewer?manifest=iiif/manifests/{MANIFEST}", timeout=30) as response:
        mirador = _scripts(response.read().decode())[0]
    assert re.fullmatch(r"/assets/mirador/mirador\.min\.[0-9a-f]{12}\.js", mirador)
    request = urllib.request.Request(server + mirador, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as response:
        headers, body = response.headers, response.read()
    assert headers["Content-Encoding"] == "gzip" and headers["Content-Type"].startswith("text/javascript")
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    vendored = hashlib.sha256(VENDORED.read_bytes()).hexdigest()
    assert hashlib.sha256(gzip.decompress(body)).hexdigest() == vendored
    (documented,) = README_SHA256.findall((VENDORED.parent / "README.md").read_text())
    assert documented == vendored
    assert len(body) < VENDORED.stat().st_size // 3  # what a first visit saves


def test_an_old_viewer_static_url_is_moved_to_the_fingerprinted_one(server: str) -> None:
    """A page cached before the assets (``/viewer/static/...?v=``) still gets Mirador."""
    connection = http.client.HTTPConnection(urlsplit(server).netloc, timeout=30)
    try:
        connection.request("GET", "/viewer/static/mirador/mirador.min.js?v=0123456789abcdef")
        response = connection.getresponse()
        response.read()
        assert response.status == 301
        assert re.fullmatch(
            r"(http://[^/]+)?/assets/mirador/mirador\.min\.[0-9a-f]{12}\.js", response.headers["Location"]
        )
        connection.request("GET", "/viewer/static/mirador/no-such.js")
        missing = connection.getresponse()
        assert missing.status == 404 and missing.read().count(b"\n") == 1
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("ancestors", "expected"), [(("*",), "*"), (("https://museum.example", "'self'"), "https://museum.example 'self'")]
)
def test_the_viewer_page_has_a_policy_and_may_be_framed_as_configured(
    settings: Settings, ancestors: tuple[str, ...], expected: str
) -> None:
    client = create_app(settings.replace(site={"frame_ancestors": ancestors})).test_client()
    response = client.get("/viewer", query_string={"manifest": "/iiif/manifests/x"})
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert policy.endswith(f"; frame-ancestors {expected}")
    assert "script-src 'self';" in policy and "'unsafe-eval'" not in policy
    assert "style-src 'self' 'unsafe-inline'" in policy  # Mirador's injected styles
    assert "X-Frame-Options" not in response.headers  # frame-ancestors says it; XFO cannot name origins
    page = response.get_data(as_text=True)
    tags = re.findall(r"<script([^>]*)>", page)
    assert all('src="' in attributes or 'type="application/json"' in attributes for attributes in tags)


def test_a_content_state_link_opens_its_canvas_and_region(client: FlaskClient) -> None:
    manifest = "https://museum.example/iiif/manifests/KH-HV-0101"
    view = contentstate.View(manifest, f"{manifest}/canvas/2", (100, 200, 300, 150))
    page = client.get("/viewer", query_string={"iiif-content": contentstate.encode(view)}).get_data(as_text=True)
    config = re.search(r'<script type="application/json" id="viewer-config">(.*?)</script>', page, re.S)
    assert config and json.loads(config.group(1))["window"] == {
        "manifestId": manifest,
        "canvasId": f"{manifest}/canvas/2",
        "initialViewerConfig": {"bounds": [100, 200, 300, 150]},
    }
    # a canvas of this server's named alone: its manifest is found from its id
    alone = client.get(
        "/viewer", query_string={"iiif-content": "http://localhost/iiif/manifests/A/canvas/1#xywh=1,2,3,4"}
    )
    assert '"manifestId": "http://localhost/iiif/manifests/A"' in alone.get_data(as_text=True)


@pytest.mark.parametrize(
    "value",
    ["", "not base64 !", "eyJ0eXBlIjoiQW5ub3RhdGlvbiJ9", "https://other.example/canvas/1#xywh=1,2,3,4", "A" * 9000],
)
def test_a_bad_content_state_is_400(client: FlaskClient, value: str) -> None:
    response = client.get("/viewer", query_string={"iiif-content": value})
    assert response.status_code == 400 and response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body.count("\n") == 1 and "iiif-content" in body


def test_mirador_runs_under_the_policy_and_opens_a_shared_view(page: Page, server: str, manifest_url: str) -> None:
    """Chromium enforces the page's CSP: Mirador must draw tiles with no violation reported, and a
    content state link must open the second canvas fitted to the shared region."""
    page.add_init_script(
        "window.violations = []; document.addEventListener('securitypolicyviolation',"
        " e => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    region = (200, 100, 300, 200)
    view = contentstate.View(manifest_url, f"{manifest_url}/canvas/2", region)
    response = page.goto(f"{server}/viewer?iiif-content={contentstate.encode(view)}", wait_until="load")
    assert response is not None and "frame-ancestors *" in response.headers["content-security-policy"]
    page.get_by_text(LABEL, exact=True).first.wait_for(state="visible", timeout=DEADLINE * 1000)
    state = """() => {
      const s = window.mirador.store.getState();
      const id = Object.keys(s.windows)[0];
      return {canvas: s.windows[id].canvasId, viewer: s.viewers[id] || null};
    }"""
    deadline = time.monotonic() + DEADLINE
    opened = page.evaluate(state)
    while (opened["viewer"] is None or "zoom" not in opened["viewer"]) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        opened = page.evaluate(state)
    assert opened["canvas"] == f"{manifest_url}/canvas/2"
    x, y, w, h = region
    assert opened["viewer"] is not None, opened
    assert abs(opened["viewer"]["x"] - (x + w / 2)) <= 2 and abs(opened["viewer"]["y"] - (y + h / 2)) <= 2
    # OpenSeadragon's zoom is 1 / the visible width in world units, which Mirador makes canvas pixels
    size = page.evaluate("(e => [e.clientWidth, e.clientHeight])(document.querySelector('.openseadragon-canvas'))")
    visible_w = 1 / opened["viewer"]["zoom"]
    visible_h = visible_w * size[1] / size[0]
    assert visible_w >= w - 2 and visible_h >= h - 2, (visible_w, visible_h, size)  # the whole region is shown
    assert min(visible_w / w, visible_h / h) <= 1.05, (visible_w, visible_h)  # and fitted to it, not the canvas
    assert page.evaluate("window.violations") == []
    assert not [e for e in errors if "Content Security Policy" in e], errors
