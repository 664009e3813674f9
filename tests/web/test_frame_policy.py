"""One frame policy over a real server: whatever ``[site] frame_ancestors`` allows (any site, or a
museum's origin), no /auth/ page can be framed by another site (clickjacking a login), while the
pages meant for embedding (``/viewer``, and ``/embed/...`` when that route exists) follow the setting.

Headers for every /auth/ page, then Chromium: a page of the museum's site framing /auth/login shows
nothing (the browser blocks it), while its frame of /viewer loads. The museum's page is another
origin (a page server on another port of this machine).
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser

from iiif_server.check import free_port, running_server
from iiif_server.web import urls
from tests.conftest import make_pattern, save_pyramid

VIEWER = "http://viewer.test"  # a viewer allowed to receive tokens ([access] token_origins)
IMAGE = "pattern.tif"
#: Every /auth/ page a browser may be sent to (the probe and the Auth 1.0 token without messageId are JSON).
AUTH_PAGES = [
    "/auth/login",
    "/auth/login?lang=en&return=/viewer",
    f"/auth/login?origin={quote(VIEWER)}",
    "/auth/1/login",
    f"/auth/1/login?origin={quote(VIEWER)}",
    "/auth/2/kiosk",
    f"/auth/2/kiosk?origin={quote(VIEWER)}",
    "/auth/2/logout",
    "/auth/1/logout",
]
TOKEN_PAGES = [f"/auth/2/token?messageId=1&origin={quote(VIEWER)}", f"/auth/1/token?messageId=1&origin={quote(VIEWER)}"]


@dataclass(frozen=True)
class Site:
    url: str  # the server, http://127.0.0.1:<port>
    museum: str  # the museum's site: http://127.0.0.1:<another port>, a real server of another origin
    frame_ancestors: str  # what [site] frame_ancestors says


class _Article(BaseHTTPRequestHandler):
    """The museum's article page: an iframe of the ``src`` it is given (escaped)."""

    def do_GET(self) -> None:
        src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
        body = f'<!doctype html><title>Museum</title><iframe src="{escape(src)}" width="800" height="600"></iframe>'
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def museum() -> Iterator[str]:
    """A real page server on another port (a fulfilled route would count as a public site, and
    Chromium's Local Network Access would block its frames of 127.0.0.1 whatever the headers say)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Article)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module", params=["any site", "the museum"])
def site(request: pytest.FixtureRequest, museum: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("frame-policy")
    (base / "images").mkdir()
    save_pyramid(make_pattern(600, 400), base / "images" / IMAGE)
    ancestors = "*" if request.param == "any site" else museum
    env = {
        "IIIF_SERVER_SITE_FRAME_ANCESTORS": ancestors,
        "IIIF_SERVER_ACCESS_STATE_DIR": str(base / "state"),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(base / "manifests-state"),
        "IIIF_SERVER_ACCESS_TOKEN_ORIGINS": VIEWER,
    }
    with running_server(["serve", "--images", str(base / "images"), "--workers", "1"], free_port(), env) as url:
        yield Site(url, museum, ancestors)


@pytest.fixture(scope="module")
def server(site: Site) -> str:
    return site.url


def _head(server: str, path: str) -> tuple[int, http.client.HTTPMessage]:
    connection = http.client.HTTPConnection(urlsplit(server).netloc, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, response.headers
    finally:
        connection.close()


def _ancestors(policy: str) -> list[str]:
    (directive,) = [d.strip() for d in policy.split(";") if d.strip().startswith("frame-ancestors")]
    return directive.split()[1:]


@pytest.mark.parametrize("path", AUTH_PAGES)
def test_auth_pages_are_never_frameable(server: str, path: str) -> None:
    status, headers = _head(server, path)
    assert status in (200, 403), (path, status)  # the kiosk refuses this address: still a page
    assert headers["Content-Type"].startswith("text/html"), path
    assert _ancestors(headers["Content-Security-Policy"]) == ["'none'"], (path, headers["Content-Security-Policy"])
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", TOKEN_PAGES)
def test_token_pages_keep_their_own_origins(server: str, path: str) -> None:
    status, headers = _head(server, path)
    assert status == 200 and headers["Content-Type"].startswith("text/html"), path
    assert _ancestors(headers["Content-Security-Policy"]) == ["'self'", VIEWER]  # never [site] frame_ancestors
    assert headers["Cache-Control"] == "no-store"


def test_embeddable_pages_follow_the_setting(site: Site) -> None:
    status, headers = _head(site.url, "/viewer?manifest=/iiif/manifests/x")
    assert status == 200 and _ancestors(headers["Content-Security-Policy"]) == [site.frame_ancestors]
    assert "X-Frame-Options" not in headers
    status, headers = _head(site.url, urls.image_embed_path(IMAGE))
    if status != 404:  # the embed pages are another change's; when present, they follow the setting too
        assert _ancestors(headers["Content-Security-Policy"]) == [site.frame_ancestors]


def _framed(browser: Browser, site: Site, path: str) -> tuple[str, bool]:
    """A museum page framing ``path`` of the server: the frame's URL and whether the page shows in it."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{site.museum}/article?{urlencode({'src': site.url + path})}", wait_until="load")
        page.wait_for_timeout(500)
        (frame,) = [f for f in page.frames if f != page.main_frame]
        shown = False
        with contextlib.suppress(Exception):  # a blocked frame is an error page the test cannot script
            shown = bool(frame.evaluate("document.querySelector('form, #mirador') !== null"))
        return frame.url, shown
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/auth/login", "/auth/1/login", "/auth/2/kiosk"])
def test_chromium_shows_no_auth_page_in_another_sites_frame(browser: Browser, site: Site, path: str) -> None:
    url, shown = _framed(browser, site, path)
    assert not shown, f"{path} was shown inside {site.museum}'s frame ({url})"
    # the control: the museum may frame the research viewer (any site, or the museum by name)
    url, shown = _framed(browser, site, "/viewer?manifest=/iiif/manifests/x")
    assert shown and url.startswith(site.url), url


def test_chromium_frames_the_viewer_only_on_the_sites_allowed(browser: Browser, site: Site) -> None:
    """Another site than the museum (``localhost`` rather than ``127.0.0.1``: another origin) may frame
    the viewer when ``frame_ancestors`` is ``*``, and not when it names the museum alone."""
    stranger = Site(site.url, site.museum.replace("127.0.0.1", "localhost"), site.frame_ancestors)
    url, shown = _framed(browser, stranger, "/viewer?manifest=/iiif/manifests/x")
    assert shown == (site.frame_ancestors == "*"), (site.frame_ancestors, url)
