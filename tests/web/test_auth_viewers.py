"""Issue 12, the viewers in a real browser: Mirador 4 through Auth 1.0, and an Auth 2.0 client page
from another origin, against ``iiif-server serve`` (gunicorn) with a restricted record.

Before, a restricted record had no manifest and no authorization services: Mirador had nothing to
log in to, the Auth 2.0 page found no probe service.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
from playwright.sync_api import Page, Request, Response

import iiif_server
from iiif_server.access.describe import auth1_login, probe_id
from iiif_server.access.endpoints import AUTH1_LOGIN, AUTH1_LOGOUT, AUTH2_ACCESS_ACTIVE, AUTH2_LOGOUT, DEGRADED_TIER
from iiif_server.check import free_port, running_server
from iiif_server.config import Settings
from tests.access_site import add_user, get, server_env
from tests.conftest import make_pattern, save_pyramid
from tests.web.sites import static_site

CLIENT_PAGE = Path(__file__).parent / "auth2_client"
# The page loads OpenSeadragon as "openseadragon.min.js" beside it: the copy vendored in the package.
OPENSEADRAGON = Path(iiif_server.__file__).parent / "web" / "static" / "openseadragon" / "openseadragon.min.js"
USER, PASSWORD = "researcher", "researcher-Pa55word-42"
WIDTH, HEIGHT = 2400, 1800  # degraded: 1000 x 750, so full-resolution tiles are 2.4 times sharper
DEGRADED = 1000
IMAGE = "stele.tif"
RECORD = "R-2"
DEADLINE = 30.0
# /iiif/3/{identifier}/{region}/{size}/{rotation}/{quality}.{format}
IMAGE_REQUEST = re.compile(r"/iiif/3/([^/?#]+)/([^/?#]+)/([^/?#]+)/([^/?#]+)/([^/?#]+)\.(?:jpg|png|webp)(?:$|\?)")


@dataclass
class Site:
    base: str  # the image server
    client: str  # the Auth 2.0 client page's origin (another port: another origin, the same site)
    log: Path


def _static_site(folder: Path) -> contextlib.AbstractContextManager[str]:
    """``folder`` over HTTP on a port of its own: the museum website that embeds the client (and
    OpenSeadragon from the package, so there is one copy of it)."""
    return static_site(folder, extra={"/" + OPENSEADRAGON.name: OPENSEADRAGON})


@pytest.fixture(scope="module")
def unlisted_client() -> Iterator[str]:
    """The same client page from an origin that ``token_origins`` does not list."""
    with _static_site(CLIENT_PAGE) as client:
        yield client


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One restricted record (R-2, the stele) beside a public one, a researcher's account made by the
    CLI, and the Auth 2.0 client's origin listed in ``[access] token_origins``."""
    base = tmp_path_factory.mktemp("auth-viewers")
    images, state, log = base / "images", base / "state", base / "server.log"
    images.mkdir()
    pattern = make_pattern(WIDTH, HEIGHT)
    for name in ("open.tif", IMAGE):
        save_pyramid(pattern, images / name, compression="jpeg")
    export = base / "collection.csv"
    export.write_text(
        f"inventory_no,title_vi,title_en,access,images\nR-1,Mở,Open,public,open.tif\n"
        f"{RECORD},Bia đá,Stone stele,restricted,{IMAGE}\n",
        encoding="utf-8",
    )
    add_user(state, USER, "restricted", PASSWORD)
    with _static_site(CLIENT_PAGE) as client:
        env = server_env(export, state, access_token_origins=client)  # lists: comma-separated in the environment
        with running_server(["serve", "--images", str(images), "--workers", "2"], free_port(), env, log=log) as url:
            yield Site(url, client, log)


@dataclass
class Traffic:
    """What the page asked of the image server, split at the moment the login window closed."""

    base: str
    logged_in: bool = False
    statuses: dict[str, int] = field(default_factory=dict)  # url -> last status
    finished: set[str] = field(default_factory=set)
    before: list[tuple[str, int]] = field(default_factory=list)
    after: list[tuple[str, int]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # after logging in: failures and answers >= 400

    def watch(self, page: Page) -> None:
        page.on("response", self._response)
        page.on("requestfinished", self._finished)
        page.on("requestfailed", self._failed)

    def _response(self, response: Response) -> None:
        if not response.url.startswith(self.base):
            return
        self.statuses[response.url] = response.status
        (self.after if self.logged_in else self.before).append((response.url, response.status))
        if self.logged_in and response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _finished(self, request: Request) -> None:
        self.finished.add(request.url)

    def _failed(self, request: Request) -> None:
        if self.logged_in:
            self.failed.append(f"{request.failure} {request.url}")

    def tiles(self, phase: list[tuple[str, int]]) -> list[str]:
        """Image requests of ``phase`` answered 200 whose bodies arrived."""
        return [u for u, s in phase if s == 200 and u in self.finished and IMAGE_REQUEST.search(u)]


def _image_request(url: str) -> tuple[str, float]:
    """An image request's identifier and its sharpness: output pixels per source pixel, across."""
    match = IMAGE_REQUEST.search(urlsplit(url).path)
    assert match, url
    identifier, region, size = unquote(match.group(1)), match.group(2), match.group(3)
    width = WIDTH if region in ("full", "square") else int(region.split(",")[2])
    wanted = size.removeprefix("^").split(",")[0]
    return identifier, (int(wanted) / width if wanted and wanted != "max" else 1.0)


def _full_resolution(url: str) -> bool:
    identifier, sharpness = _image_request(url)
    return identifier == IMAGE and sharpness > 0.99


def _wait(page: Page, until: object, message: object) -> None:
    deadline = time.monotonic() + DEADLINE
    while not until() and time.monotonic() < deadline:  # type: ignore[operator]
        page.wait_for_timeout(100)  # lets Playwright deliver the network events meanwhile
    assert until(), message() if callable(message) else message  # type: ignore[operator]


def _zoom_in(page: Page) -> None:
    """The mouse wheel over OpenSeadragon, 1.2 times per step: past one image pixel per screen pixel."""
    box = page.locator(".openseadragon-canvas").first.bounding_box()
    assert box
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(12):
        page.mouse.wheel(0, -100)
        page.wait_for_timeout(150)
    page.wait_for_timeout(1000)  # the tiles of the last step are asked for


def _log_in(popup: Page) -> None:
    """The server's login page, in the window the viewer opened; it closes itself once logged in."""
    popup.wait_for_load_state()
    popup.locator('input[name="username"]').fill(USER)
    popup.locator('input[name="password"]').fill(PASSWORD)
    with popup.expect_event("close", timeout=DEADLINE * 1000):
        popup.locator('input[name="password"]').press("Enter")


def _probe(site: Site, token: str) -> dict[str, object]:
    status, _, body = get(site.base, urlsplit(probe_id(site.base, IMAGE)).path, Authorization=f"Bearer {token}")
    assert status == 200
    return json.loads(body)


def test_mirador_shows_the_preview_logs_in_through_auth1_loads_full_resolution_tiles_and_logs_out(
    page: Page, site: Site
) -> None:
    settings = Settings()
    login = auth1_login(settings, site.base)
    traffic = Traffic(site.base)
    traffic.watch(page)
    manifest = f"{site.base}/iiif/manifests/{RECORD}"
    page.goto(f"{site.base}/viewer?manifest={quote(manifest, safe='')}", wait_until="load")

    # Anonymous: the login prompt (the 1.0 login service's label) over the preview tier's tiles.
    prompt = page.get_by_text(login["label"], exact=True)
    prompt.wait_for(state="visible", timeout=DEADLINE * 1000)
    _wait(page, lambda: traffic.tiles(traffic.before), lambda: f"no preview tiles: {traffic.before}")
    for url in traffic.tiles(traffic.before):
        identifier, sharpness = _image_request(url)
        assert identifier == IMAGE + DEGRADED_TIER or sharpness <= DEGRADED / WIDTH + 0.01, url
    # (zoomed in on the preview: test_mirador_deep_zoom_of_the_preview_is_never_refused)

    # Mirador's own Auth 1.0 interaction: the prompt, its confirm button, the login window.
    prompt.click()
    with page.expect_popup(timeout=DEADLINE * 1000) as opened:
        page.get_by_role("button", name=login["confirmLabel"]).click()
    popup = opened.value
    assert popup.url.startswith(f"{site.base}{AUTH1_LOGIN}?origin=")
    _log_in(popup)
    traffic.logged_in = True

    # Mirador asks the token service (iframe + postMessage), refetches info.json with the token, and
    # shows the logout button; zoomed in, OpenSeadragon asks for scale-factor-1 tiles.
    (logout,) = [s for s in login["service"] if s["profile"].endswith("logout")]
    page.get_by_role("button", name=logout["label"]).wait_for(state="visible", timeout=DEADLINE * 1000)
    info = f"{site.base}/iiif/3/{quote(IMAGE, safe='')}/info.json"
    _wait(page, lambda: traffic.statuses.get(info) == 200, lambda: f"no full info.json: {traffic.after}")
    _zoom_in(page)
    _wait(
        page,
        lambda: len([u for u in traffic.tiles(traffic.after) if _full_resolution(u)]) >= 2,
        lambda: f"no full-resolution tiles after logging in: {traffic.after}",
    )
    page.wait_for_timeout(1000)  # the last tiles of the zoom settle
    assert not traffic.failed, f"requests failed after logging in: {traffic.failed}"

    # Logout: Mirador opens the logout service in a window and asks info.json again 2 s later; the
    # login prompt is back and the preview tier is drawn again.
    seen = len(traffic.after)
    with page.expect_popup(timeout=DEADLINE * 1000) as opened:
        page.get_by_role("button", name=logout["label"]).click()
    window = opened.value
    window.wait_for_load_state()
    assert window.url == site.base + AUTH1_LOGOUT
    window.close()
    prompt.wait_for(state="visible", timeout=DEADLINE * 1000)
    _wait(
        page,
        lambda: [u for u in traffic.tiles(traffic.after[seen:]) if _image_request(u)[0] == IMAGE + DEGRADED_TIER],
        lambda: f"the preview tier was not drawn again after logging out: {traffic.after[seen:]}",
    )


def test_mirador_deep_zoom_of_the_preview_is_never_refused(page: Page, site: Site) -> None:
    """Issue 12: the info.json seen anonymously must not invite a viewer to request what it will be refused.
    Before, the tier kept the master's 2400 x 1800 with scale factors 4, 8, 16, and OpenSeadragon asked it
    for sharper tiles (401); now it is 1000 x 750 from scale factor 1, its deepest zoom served."""
    traffic = Traffic(site.base)
    traffic.watch(page)
    manifest = f"{site.base}/iiif/manifests/{RECORD}"
    page.goto(f"{site.base}/viewer?manifest={quote(manifest, safe='')}", wait_until="load")
    _wait(page, lambda: traffic.tiles(traffic.before), lambda: f"no preview tiles: {traffic.before}")
    _zoom_in(page)
    preview = IMAGE + DEGRADED_TIER
    _wait(
        page,
        lambda: [u for u in traffic.tiles(traffic.before) if _image_request(u) == (preview, 1.0)],
        lambda: f"OpenSeadragon never reached the preview's own full size: {traffic.before}",
    )
    page.wait_for_timeout(1000)  # the last tiles of the zoom settle
    refused = [(u, s) for u, s in traffic.before if s >= 400]
    assert not refused, f"the anonymous info.json invited requests the server refused: {refused}"


def test_auth2_client_from_another_origin_probes_logs_in_gets_a_token_and_logs_out(page: Page, site: Site) -> None:
    traffic = Traffic(site.base)
    traffic.watch(page)
    bearer: list[str] = []  # where the page sent the token: the probe only (Auth 2.0 §4.4)
    page.on("request", lambda request: bearer.append(request.url) if "authorization" in request.headers else None)
    image = f"{site.base}/iiif/3/{quote(IMAGE, safe='')}"
    page.goto(f"{site.client}/index.html?image={quote(image, safe='')}", wait_until="load")

    def step(name: str) -> None:
        """Wait for the page to reach step ``name``, or to stop at an error (then say which)."""
        ends = json.dumps([name, "no-probe", "token-error", "failed"])
        page.wait_for_function(f"{ends}.includes(window.auth2.step)", timeout=DEADLINE * 1000)
        reached = page.evaluate("window.auth2.step")
        assert reached == name, f"the client stopped at {reached!r}: {page.locator('#error').inner_text()}"

    # Probe without a token: 401 with a substitute, shown; the active service's heading and button.
    step("substitute")
    assert page.evaluate("window.auth2.probes") == [{"token": False, "httpStatus": 200, "status": 401}]
    assert page.locator("#heading").inner_text() == "This image is restricted"
    _wait(page, lambda: traffic.tiles(traffic.before), lambda: f"no substitute shown: {traffic.before}")
    assert not [u for u in traffic.tiles(traffic.before) if _full_resolution(u)]

    # The access service in a new window with ?origin=; the token by postMessage; the probe says 200.
    with page.expect_popup(timeout=DEADLINE * 1000) as opened:
        page.locator("#confirm").click()
    popup = opened.value
    assert popup.url == f"{site.base}{AUTH2_ACCESS_ACTIVE}?origin={quote(site.client, safe='')}"
    _log_in(popup)
    traffic.logged_in = True
    step("authorised")
    probes = page.evaluate("window.auth2.probes")
    assert probes[-1] == {"token": True, "httpStatus": 200, "status": 200}
    token = page.evaluate("window.auth2.token")
    messages = page.evaluate("window.auth2.messages")
    assert [m["origin"] for m in messages] == [site.base]  # posted to this page, by the token service
    assert messages[0]["data"]["type"] == "AuthAccessToken2" and messages[0]["data"]["accessToken"] == token

    # Full resolution: OpenSeadragon zoomed to one image pixel per screen pixel.
    page.evaluate("(v => v.viewport.zoomTo(v.viewport.imageToViewportZoom(1), null, true))(window.auth2.viewer)")
    _wait(
        page,
        lambda: len([u for u in traffic.tiles(traffic.after) if _full_resolution(u)]) >= 2,
        lambda: f"no full-resolution tiles with the token: {traffic.after}",
    )
    page.wait_for_timeout(1000)
    assert not traffic.failed, f"requests failed after logging in: {traffic.failed}"
    assert bearer and set(bearer) == {probe_id(site.base, IMAGE)}, bearer

    # Logout: the logout service in a window, the token discarded; the probe is 401 again, and the
    # discarded token no longer opens it either.
    with page.expect_popup(timeout=DEADLINE * 1000) as opened:
        page.locator("#logout").click()
    logout = opened.value
    logout.wait_for_load_state()
    assert logout.url == site.base + AUTH2_LOGOUT
    logout.close()
    step("substitute")
    assert page.evaluate("window.auth2.probes")[-1] == {"token": False, "httpStatus": 200, "status": 401}
    assert page.evaluate("window.auth2.token") is None
    assert _probe(site, token)["status"] == 401


def test_auth2_client_from_an_unlisted_origin_gets_no_token(page: Page, site: Site, unlisted_client: str) -> None:
    """The same flow from an origin not in ``token_origins``: logging in works, but no access token
    reaches the page (the token service posts only to listed origins), so the image stays the preview."""
    image = f"{site.base}/iiif/3/{quote(IMAGE, safe='')}"
    page.goto(f"{unlisted_client}/index.html?image={quote(image, safe='')}", wait_until="load")
    page.wait_for_function("window.auth2.step === 'substitute'", timeout=DEADLINE * 1000)
    with page.expect_popup(timeout=DEADLINE * 1000) as opened:
        page.locator("#confirm").click()
    _log_in(opened.value)
    page.wait_for_function("['token-error', 'authorised'].includes(window.auth2.step)", timeout=DEADLINE * 1000)
    assert page.evaluate("window.auth2.step") == "token-error"
    assert page.evaluate("window.auth2.token") is None
    messages = page.evaluate("window.auth2.messages")
    assert not [m for m in messages if "accessToken" in (m["data"] or {})], messages
    assert page.evaluate("window.auth2.probes")[-1]["status"] == 401
