"""Issue 13, the embeds in headless Chromium against ``iiif-server demo`` (gunicorn): an iframe snippet
(``embedcode.iframe``) on a page of another site loads the viewer, tiles in AVIF, with no failed request
and no console error; keyboard use; page navigation; Content State links; axe; phone screenshots.

Before, /embed/... was a 404: the frame showed a one-line error and no tile.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import pyvips
from playwright.sync_api import Browser, ConsoleMessage, Frame, Page, Request, Response

from iiif_server.web import contentstate, embedcode, urls
from tests.web.audit import violations
from tests.web.sites import static_site

RECORD = "KH-HV-0101"  # the Shiva statue: three views
RESTRICTED = "KH-HV-0104"
DRUM = "trong-dong-ngoc-lu.tif"
DEADLINE = 30.0
MIN_TILES = 4
FULLY_LOADED = "() => !iiifEmbed.viewer.isAnimating() && iiifEmbed.viewer.world.getItemAt(0).getFullyLoaded()"
# /iiif/3/{identifier}/{region}/{size}/{rotation}/{quality}.{format}
TILE = re.compile(r"/iiif/3/([^/?#]+)/([^/?#]+)/([^/?#]+)/0/default\.(avif|webp|jpg|png)$")


@pytest.fixture(scope="module")
def server(demo_site: str) -> str:
    """The session's `iiif-server demo` (tests/web/conftest.py)."""
    return demo_site


@pytest.fixture(scope="module")
def museum(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The museum's article pages, each with the one-line snippet an item page gives; and one with
    WordPress's sanitised oEmbed answer (docs/website.md): a sandbox with scripts only (an opaque
    origin: no storage, CORS for everything), a secret in the fragment."""
    folder = tmp_path_factory.mktemp("museum")
    record = embedcode.iframe(server + urls.embed_path(RECORD), "Trình xem ảnh")
    wordpress = embedcode.iframe(server + urls.embed_path(RECORD) + "#?secret=x1", "Trình xem ảnh")
    wordpress = re.sub(r' allow="[^"]*" allowfullscreen', ' sandbox="allow-scripts"', wordpress)
    assert 'sandbox="allow-scripts"' in wordpress
    for name, snippet in (("record.html", record), ("wordpress.html", wordpress)):
        (folder / name).write_text(
            f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>Bài viết</title>'
            f'<link rel="icon" href="data:,"></head><body><h1>Bài viết</h1>{snippet}</body></html>',
            encoding="utf-8",
        )
    with static_site(folder, host="localhost") as site:  # localhost: another site than 127.0.0.1
        yield site


@dataclass
class Watch:
    """Everything the page and its frames asked of the server, failed, or said on the console."""

    server: str
    statuses: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    responses: dict[str, Response] = field(default_factory=dict)

    def attach(self, page: Page) -> Watch:
        page.on("response", self._response)
        page.on("requestfinished", lambda request: self.finished.add(request.url))
        page.on("requestfailed", self._failed)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        return self

    def _response(self, response: Response) -> None:
        self.statuses[response.url] = response.status
        self.responses[response.url] = response
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _failed(self, request: Request) -> None:
        self.failed.append(f"{request.failure} {request.url}")

    def _console(self, message: ConsoleMessage) -> None:
        # errors only: Chromium warns that the snippet's allow="fullscreen" outranks its allowfullscreen
        # (kept for older browsers), and about GPU stalls in Mirador's WebGL
        if message.type == "error":
            self.console.append(f"{message.type}: {message.text}")

    def tiles(self) -> list[str]:
        return [
            u for u, s in self.statuses.items() if u.startswith(self.server) and TILE.search(u) and u in self.finished
        ]


def _embed_frame(page: Page, server: str) -> Frame:
    handle = page.wait_for_selector("iframe", timeout=DEADLINE * 1000)
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    frame.wait_for_url(re.compile(re.escape(server) + "/embed/"), timeout=DEADLINE * 1000)
    return frame


def _ready(frame: Frame | Page) -> None:
    frame.wait_for_function("() => window.iiifEmbed && window.iiifEmbed.ready", timeout=DEADLINE * 1000)


def _wait_tiles(page: Page, watch: Watch, count: int = MIN_TILES) -> list[str]:
    deadline = time.monotonic() + DEADLINE
    while len(watch.tiles()) < count and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return watch.tiles()


def _artefacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("IIIF_TEST_ARTIFACTS") or tmp_path) / "embed"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("article", ["record.html", "wordpress.html"])
def test_an_embed_on_another_site_shows_avif_tiles_with_no_error(
    page: Page, server: str, museum: str, article: str
) -> None:
    watch = Watch(server).attach(page)
    page.goto(f"{museum}/{article}")
    frame = _embed_frame(page, server)
    _ready(frame)
    tiles = _wait_tiles(page, watch)
    assert len(tiles) >= MIN_TILES, watch.statuses
    assert all(watch.statuses[t] == 200 for t in tiles)
    # the smallest format Chromium decodes that info.json lists: every tile is AVIF
    assert {TILE.search(t).group(4) for t in tiles} == {"avif"}  # type: ignore[union-attr]
    assert frame.evaluate("iiifEmbed.format") == "avif"
    assert frame.evaluate("iiifEmbed.decodes") == {"avif": True, "webp": True, "jpg": True, "png": True}
    # the label, the rights and a link out of the frame to the record
    assert frame.locator("h1.label").inner_text() == "Tượng thần Shiva"
    link = frame.locator("a.record")
    assert link.get_attribute("target") == "_top" and link.get_attribute("href") == f"{server}/items/{RECORD}"
    page.wait_for_timeout(500)  # late requests and messages
    assert watch.failed == [] and watch.console == [] and frame.evaluate("iiifEmbed.errors") == []


def test_avif_tiles_decode_to_the_jpeg_tiles_pixels(page: Page, server: str) -> None:
    watch = Watch(server).attach(page)
    page.goto(server + urls.image_embed_path(DRUM))
    _ready(page)
    tiles = _wait_tiles(page, watch)
    full = [t for t in tiles if TILE.search(t).group(3) == "256,256"]  # type: ignore[union-attr]
    assert full, tiles
    for url in full[:3]:
        avif_bytes = watch.responses[url].body()  # as the browser received it
        avif = pyvips.Image.new_from_buffer(avif_bytes, "")
        with urllib.request.urlopen(url.removesuffix(".avif") + ".jpg", timeout=30) as response:
            jpeg_bytes = response.read()
        jpeg = pyvips.Image.new_from_buffer(jpeg_bytes, "")
        assert (avif.width, avif.height) == (jpeg.width, jpeg.height) == (256, 256)
        difference = (avif.cast("float") - jpeg.cast("float")).abs()
        assert difference.avg() < 6, (url, difference.avg())  # lossy both, the same picture
        assert len(avif_bytes) < len(jpeg_bytes)


def _active(frame: Frame) -> str:
    result: str = frame.evaluate(
        "() => { const e = document.activeElement; return e.dataset.action || e.className || e.tagName; }"
    )
    return result


def test_keyboard_reaches_every_control_and_the_canvas_zooms_and_pages(page: Page, server: str, museum: str) -> None:
    page.goto(f"{museum}/record.html")
    frame = _embed_frame(page, server)
    _ready(frame)
    reached = []
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.append(_active(frame))
        if reached[-1] == "openseadragon-canvas":
            break
    # "previous" is disabled on the first image: not in the tab order
    assert reached == ["zoom-in", "zoom-out", "home", "full-screen", "next", "share", "openseadragon-canvas"]
    assert frame.evaluate("document.activeElement.getAttribute('aria-label')").startswith("Ảnh phóng to được")
    # the focus ring is the accent colour
    ring = frame.evaluate("getComputedStyle(document.activeElement).outlineColor")
    assert ring == "rgb(200, 150, 62)"
    before = frame.evaluate("iiifEmbed.viewer.viewport.getZoom()")
    page.keyboard.press("+")
    page.wait_for_timeout(700)
    after = frame.evaluate("iiifEmbed.viewer.viewport.getZoom()")
    assert after > before * 1.05, (before, after)
    page.keyboard.press("0")  # home
    frame.wait_for_function(f"() => iiifEmbed.viewer.viewport.getZoom() < {after}", timeout=5000)
    # next image: the button, then the keyboard
    frame.locator('[data-action="next"]').click()
    frame.wait_for_function("() => iiifEmbed.ready && iiifEmbed.canvas === 1", timeout=DEADLINE * 1000)
    source = frame.evaluate("iiifEmbed.viewer.world.getItemAt(0).source.id")
    assert source.endswith("/iiif/3/hien-vat%2FKH-HV-0101%20m%E1%BA%B7t%20sau.tif")
    assert frame.locator("#page-status").inner_text() == "2 / 3"
    frame.locator(".openseadragon-canvas").focus()
    page.keyboard.press("PageDown")
    frame.wait_for_function("() => iiifEmbed.ready && iiifEmbed.canvas === 2", timeout=DEADLINE * 1000)
    assert frame.locator('[data-action="next"]').is_disabled()
    assert frame.locator("#page-status").inner_text() == "3 / 3"


def test_a_shared_view_opens_the_embed_at_that_region(page: Page, server: str, museum: str) -> None:
    watch = Watch(server).attach(page)
    page.goto(f"{museum}/record.html")
    frame = _embed_frame(page, server)
    _ready(frame)
    frame.locator('[data-action="next"]').click()
    frame.wait_for_function("() => iiifEmbed.ready && iiifEmbed.canvas === 1", timeout=DEADLINE * 1000)
    for action in ("zoom-in", "zoom-in", "zoom-in"):
        frame.locator(f'[data-action="{action}"]').click()
    frame.evaluate("iiifEmbed.viewer.viewport.panBy(new OpenSeadragon.Point(0.05, 0.1), true)")
    region = frame.evaluate("iiifEmbed.visibleRegion()")
    frame.locator('[data-action="share"]').click()
    link: str = frame.evaluate("iiifEmbed.shared")
    assert frame.locator("#share-url").input_value() == link and frame.locator("#share-panel").is_visible()
    assert frame.locator("#share-status").inner_text() in ("Đã sao chép liên kết.", "Hãy sao chép liên kết ở trên.")
    assert link.startswith(f"{server}/items/{RECORD}?iiif-content=")
    value = parse_qs(urlsplit(link).query)["iiif-content"][0]
    # what embed.js wrote is what the server reads, and what contentstate.encode writes
    view = contentstate.decode(value)
    assert view == contentstate.View(
        f"{server}/iiif/manifests/{RECORD}", f"{server}/iiif/manifests/{RECORD}/canvas/2", tuple(region)
    )
    assert contentstate.encode(view) == value
    x, y, w, h = region
    assert 0 < w < 1800 and 0 < h < 2400 and x > 0 and y > 0  # zoomed in, inside the canvas
    # the item's embed opened with that view: the same canvas, the same region in view (once this view's
    # tiles have all arrived: leaving the page would abort the ones still loading)
    frame.wait_for_function(FULLY_LOADED, timeout=DEADLINE * 1000)
    frame.goto(f"{server}{urls.embed_path(RECORD)}?iiif-content={value}")
    _ready(frame)
    assert frame.evaluate("iiifEmbed.canvas") == 1
    opened = frame.evaluate("iiifEmbed.visibleRegion()")
    assert all(abs(a - b) <= 0.02 * 1800 for a, b in zip(opened, region, strict=True)), (opened, region)
    _wait_tiles(page, watch, 2)
    assert watch.failed == [] and watch.console == []


def test_a_restricted_record_shows_preview_tiles_only(page: Page, server: str) -> None:
    watch = Watch(server).attach(page)
    page.goto(server + urls.embed_path(RESTRICTED))
    _ready(page)
    tiles = _wait_tiles(page, watch)
    assert tiles and all("~preview/" in t for t in tiles), tiles
    assert watch.failed == [] and watch.console == []


def test_mirador_on_request(page: Page, server: str) -> None:
    watch = Watch(server).attach(page)
    page.goto(f"{server}{urls.embed_path(RECORD)}?viewer=mirador&lang=en")
    page.get_by_text("Shiva statue", exact=True).first.wait_for(state="visible", timeout=DEADLINE * 1000)
    assert len(_wait_tiles(page, watch)) >= MIN_TILES
    # Mirador 4.0.0 itself logs React 19's deprecation of element.ref as an error
    assert watch.failed == [] and [m for m in watch.console if "element.ref was removed in React 19" not in m] == []


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("record", urls.embed_path(RECORD)),
        ("record-en", urls.embed_path(RECORD) + "?lang=en"),
        ("image", urls.image_embed_path(DRUM)),
        ("restricted", urls.embed_path(RESTRICTED)),
    ],
)
def test_no_serious_accessibility_violations_and_usable_on_a_phone(
    browser: Browser, server: str, tmp_path: Path, name: str, path: str
) -> None:
    # axe is injected as an inline script, which the embeds' CSP forbids: bypassed for the audit only
    context = browser.new_context(viewport={"width": 375, "height": 667}, bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(server + path)
        _ready(page)
        page.wait_for_timeout(500)
        page.screenshot(path=str(_artefacts(tmp_path) / f"embed-{name}-375x667.png"))
        found: list[dict[str, Any]] = violations(page)
        assert found == []
        # every control is on screen at 375 px
        for box in [page.locator(".control").nth(i).bounding_box() for i in range(page.locator(".control").count())]:
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    finally:
        context.close()


@pytest.mark.parametrize(
    ("decodes", "chosen"),
    [({"avif": False, "webp": True}, "webp"), ({"avif": False, "webp": False}, "jpg")],
)
def test_a_browser_without_avif_gets_the_next_format_it_decodes(
    browser: Browser, server: str, decodes: dict[str, bool], chosen: str
) -> None:
    """embed.js keeps its decoding probes' answers in sessionStorage: a browser that decodes no AVIF
    (or no WebP either) is simulated by that answer; the paged document shows its page count."""
    context = browser.new_context(viewport={"width": 800, "height": 600})
    answer = json.dumps({**decodes, "jpg": True, "png": True})
    context.add_init_script(f"sessionStorage.setItem('iiif-embed-decodes', {json.dumps(answer)})")
    try:
        page = context.new_page()
        watch = Watch(server).attach(page)
        page.goto(server + urls.embed_path("KH-TL-0001"))  # the paged "tư liệu" record: a four-page decree
        _ready(page)
        tiles = _wait_tiles(page, watch)
        assert tiles and {TILE.search(t).group(4) for t in tiles} == {chosen}  # type: ignore[union-attr]
        assert page.evaluate("iiifEmbed.format") == chosen
        assert page.locator("#page-status").inner_text() == "1 / 4"
        assert watch.failed == [] and watch.console == []
    finally:
        context.close()
