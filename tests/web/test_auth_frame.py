"""Issue 12: the access token page in a real browser, as a viewer uses it: framed by the viewer's
page, it posts the token message to that page; a site not allowed to receive tokens cannot frame it.

Before, /auth/2/token was a 404 and no message ever arrived.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from iiif_server.check import free_port, running_server
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

VIEWER = "http://viewer.test"  # a viewer's site, served by the browser's route interception
OTHER = "http://other.test"  # a site not in token_origins
STAFF = "192.0.2.9"  # a staff network: a token with no cookie, so the cross-site frame needs none


@pytest.fixture(scope="module")
def framing_browser() -> Iterator[Browser]:
    """Chromium as the viewer tests launch it, but letting a public site's page frame a server on
    127.0.0.1 (Local Network Access would block that here; in production both sites are public)."""
    local = "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, local])
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("auth-frame")
    (base / "images").mkdir()
    env = {
        "IIIF_SERVER_ACCESS_STATE_DIR": str(base / "state"),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(base / "manifests-state"),
        "IIIF_SERVER_ACCESS_TOKEN_ORIGINS": VIEWER,
        "IIIF_SERVER_ACCESS_EXTERNAL_NETWORKS": "192.0.2.0/24",
        "IIIF_SERVER_SERVER_TRUSTED_PROXIES": "127.0.0.1",
    }
    with running_server(["serve", "--images", str(base / "images"), "--workers", "1"], free_port(), env) as url:
        yield url


def _messages(browser: Browser, server: str, site: str, wait_ms: int) -> list[dict]:
    """What a page of ``site`` framing the token service receives within ``wait_ms``."""
    page_html = f"""<!doctype html><body><script>
window.received = [];
window.addEventListener("message", (e) => window.received.push({{origin: e.origin, data: e.data}}));
</script><iframe src="{server}/auth/2/token?messageId=m-1&amp;origin={site}"></iframe></body>"""
    context = browser.new_context(extra_http_headers={"X-Forwarded-For": STAFF})
    try:
        page = context.new_page()
        page.route(f"{site}/", lambda route: route.fulfill(body=page_html, content_type="text/html"))
        page.goto(f"{site}/")
        with contextlib.suppress(Exception):  # nothing arrived: the caller asserts on the empty list
            page.wait_for_function("window.received.length > 0", timeout=wait_ms)
        return list(page.evaluate("window.received"))
    finally:
        context.close()


def test_the_framed_token_page_posts_to_the_viewer_and_not_to_other_sites(
    framing_browser: Browser, server: str
) -> None:
    (received,) = _messages(framing_browser, server, VIEWER, 20_000)
    assert received["origin"] == server  # from the token service's own origin
    message = received["data"]
    assert message["type"] == "AuthAccessToken2" and message["messageId"] == "m-1" and message["accessToken"]
    assert _messages(framing_browser, server, OTHER, 3_000) == []  # frame-ancestors keeps it out of other sites
