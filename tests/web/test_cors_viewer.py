"""A viewer on the museum's own web site, in headless Chromium: a page of another origin listed in
``[access] token_origins`` fetches a restricted image's info.json with ``credentials: "include"``
(as OpenSeadragon's ``ajaxWithCredentials`` does) and, once its visitor has logged in, reads the
full-resolution document; before, the browser refused the credentialed answer (``*``) outright.
A page of an origin not listed still cannot read it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from iiif_server.check import free_port, running_server
from tests.access_site import add_user, server_env
from tests.conftest import make_pattern, save_pyramid
from tests.test_access_authorised import PASSWORDS
from tests.web.sites import QuietHandler, page_server

pytestmark = pytest.mark.slow  # Chromium and a real server (tests/conftest.py: slow tests)

WIDTH, HEIGHT = 2400, 1800
READ = """async (url) => {
  try {
    const response = await fetch(url, {credentials: "include"});
    const document = await response.json();
    return {id: document.id, width: document.width, maxWidth: document.maxWidth ?? null};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class _Page(QuietHandler):
    """The museum's web site: one empty page (the test runs the viewer's fetch in it)."""

    def do_GET(self) -> None:
        body = b"<!doctype html><meta charset=utf-8><title>Museum</title>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def museum_site() -> Iterator[int]:
    with page_server(_Page) as origin:
        yield int(origin.rpartition(":")[2])


@pytest.fixture(scope="module")
def iiif(museum_site: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("cors-viewer")
    images, state = base / "images", base / "state"
    images.mkdir()
    save_pyramid(make_pattern(WIDTH, HEIGHT), images / "stele.tif", compression="jpeg")
    export = base / "collection.csv"
    export.write_text("inventory_no,title_vi,access,images\nR-2,Bia,restricted,stele.tif\n", encoding="utf-8")
    add_user(state, "alice", "restricted", PASSWORDS["alice"])
    env = server_env(export, state, access_token_origins=f"http://127.0.0.1:{museum_site}")
    with running_server(
        ["serve", "--images", str(images), "--workers", "1"], free_port(), env, log=base / "log"
    ) as url:
        yield url


def test_a_page_of_a_listed_origin_reads_the_full_info_json_after_login(
    page: Page, iiif: str, museum_site: int
) -> None:
    info = f"{iiif}/iiif/3/stele.tif/info.json"
    page.goto(f"http://127.0.0.1:{museum_site}/")
    anonymous = page.evaluate(READ, info)  # the 302 to the tier, and the tier, pass CORS with credentials
    assert anonymous == {"id": f"{iiif}/iiif/3/stele.tif~preview", "width": 1000, "maxWidth": 1000}  # its own size

    page.goto(f"{iiif}/auth/login?lang=en")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORDS["alice"])
    with page.expect_navigation():
        page.click("form[method=post] button[type=submit]")
    assert any(cookie["name"] == "iiif_session" for cookie in page.context.cookies())

    page.goto(f"http://127.0.0.1:{museum_site}/")
    full = page.evaluate(READ, info)
    assert full["id"] == f"{iiif}/iiif/3/stele.tif" and full["width"] == WIDTH and full["maxWidth"] > WIDTH

    page.goto(f"http://localhost:{museum_site}/")  # another origin, not listed: refused by the browser
    refused = page.evaluate(READ, info)
    assert "error" in refused and "TypeError" in refused["error"], refused
