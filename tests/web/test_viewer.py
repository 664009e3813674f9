"""``/viewer``: Mirador 4 in headless Chromium against the real server (gunicorn in a subprocess).

The server is ``iiif-server demo`` on the demo images, and the manifest is one the server
builds from the demo collection export (``iiif_server/demo_collection/``): the whole path a
museum's visitor takes, from export row to tiles on screen.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Page, Request, Response

from iiif_server import create_app
from iiif_server.check import free_port, running_server
from iiif_server.config import Settings
from tests.conftest import demo_env

MANIFEST = "KH-HV-0101"  # the demo's Shiva statue: three views, pyramidal TIFFs
LABEL = "Shiva statue"  # Mirador's interface is in English: it shows the manifest label's "en" entry
FIRST_IMAGE = "hien-vat/KH-HV-0101 mặt trước.tif"
DEADLINE = 30.0
MIN_TILES = 4
# /iiif/3/{identifier}/{region}/{size}/{rotation}/{quality}.{format}: an image request, not info.json
IMAGE_REQUEST = re.compile(r"/iiif/3/[^/?#]+/[^/?#]+/[^/?#]+/[^/?#]+/[^/?#]+\.(?:jpg|png|webp)(?:$|\?)")


@pytest.fixture(scope="module")
def server(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``iiif-server demo`` (gunicorn, two workers) on the session's demo images."""
    env = demo_env(demo_root, tmp_path_factory.mktemp("viewer-state"))
    with running_server(["demo", "--workers", "2"], free_port(), env=env) as base:
        yield base


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
    assert f'manifestId: "{base or "http://localhost"}/{manifest}"' in page


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
    assert "Mirador.viewer(" in page
    assert "Mirador.requestInfoResponse(" in page  # a new tier after an Auth 1.0 login: test_auth_viewers.py
    script = re.search(r'<script src="([^"]+)"', page)
    assert script and script.group(1).startswith("/viewer/static/mirador/mirador.min.js?v=")


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
