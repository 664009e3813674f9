"""The public catalogue in Chromium against ``iiif-server demo`` (real gunicorn, real HTTP): every page
passes axe-core (0 serious/critical), fits a 375 px phone without horizontal scrolling (screenshots
kept), the search box finds the drum by "trong dong" typed from the keyboard, the language switch
sticks, and the pages' CSP blocks nothing of their own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from iiif_server.web import urls
from tests.web.audit import violations

DRUM = "KH-HV-0001"
DRUM_VI = "Trống đồng Ngọc Lũ"
STELE = "KH-HV-0104"  # restricted in the demo collection
DEGRADED = 1000  # [access] degraded_size, the default
PAGES = {
    "home": urls.HOME,
    "item": urls.item_path(DRUM),
    "restricted-item": urls.item_path(STELE),
    "browse": urls.browse_path("type"),
    "browse-value": urls.browse_path("type", "hiện vật"),
    "search": urls.SEARCH + "?q=tr%E1%BB%91ng",
    "not-found": urls.item_path("KH-NOPE"),
}
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def server(demo_site: str) -> str:
    """The session's `iiif-server demo` (tests/web/conftest.py)."""
    return demo_site


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    folder = Path(os.environ["IIIF_TEST_ARTIFACTS"]) / "site" if os.environ.get("IIIF_TEST_ARTIFACTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _csp_reports(page: Page) -> list[str]:
    """Console messages of Content-Security-Policy violations (our own page breaking its policy)."""
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None)
    return found


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_passes_axe_on_a_desktop_and_fits_a_phone(
    browser: Browser, server: str, artefacts: Path, name: str
) -> None:
    status = 404 if name == "not-found" else 200
    for viewport in ({"width": 1280, "height": 900}, PHONE):
        # axe is injected as an inline script, which the pages' own CSP rightly refuses
        context = browser.new_context(viewport=viewport, bypass_csp=True)  # type: ignore[arg-type]
        try:
            page = context.new_page()
            response = page.goto(server + PAGES[name], wait_until="load")
            assert response is not None and response.status == status
            assert page.evaluate("document.documentElement.lang") == "vi"
            found = violations(page)
            assert not found, f"{name} at {viewport['width']} px: {found}"
            if viewport == PHONE:
                shot = artefacts / f"site-{name}-375.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{name} scrolls sideways at 375 px: {width} px wide"
        finally:
            context.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_the_pages_policy_blocks_nothing_of_their_own(page: Page, server: str, name: str) -> None:
    """Under the strict CSP: no violation reported, the theme's <style> (nonce) and site.css applied."""
    reports = _csp_reports(page)
    page.goto(server + PAGES[name], wait_until="load")
    header = page.evaluate("getComputedStyle(document.querySelector('.site-header')).backgroundColor")
    assert header == "rgb(122, 46, 29)"  # [site] primary_colour #7a2e1d, through var(--primary)
    assert not reports, reports


def _images(page: Page) -> list[dict[str, Any]]:
    """The page's Image API pictures as drawn: the URL Chromium chose and the decoded size."""
    return list(
        page.evaluate(
            """() => Array.from(document.images).filter(i => i.currentSrc.includes("/iiif/3/")).map(i => (
                {src: i.currentSrc, width: i.naturalWidth, height: i.naturalHeight, complete: i.complete}))"""
        )
    )


def _drawn(page: Page, selector: str) -> list[dict[str, Any]]:
    """``_images`` once every image of ``selector`` was scrolled into view (they load lazily) and decoded.

    The wait is a function, not an expression: Playwright polls an expression through eval(), which
    the page's CSP rightly refuses."""
    for image in page.locator(selector).all():
        image.scroll_into_view_if_needed()
    page.wait_for_function(
        f"() => Array.from(document.querySelectorAll({selector!r})).every(i => i.complete && i.naturalWidth)"
    )
    return _images(page)


def test_item_pages_show_avif_pictures_and_a_restricted_one_no_larger_than_its_preview(page: Page, server: str) -> None:
    page.goto(server + urls.item_path(DRUM), wait_until="load")
    (drum,) = _images(page)
    assert drum["src"].endswith("/default.avif") and drum["width"] > 0  # Chromium takes the smallest format
    assert page.locator("h1").inner_text() == DRUM_VI
    assert page.locator("iframe").get_attribute("src") == urls.embed_path(DRUM) + "?lang=vi"
    page.goto(server + urls.item_path(STELE), wait_until="load")
    pictures = _drawn(page, ".pictures img")
    assert len(pictures) == 2  # the stele's two faces
    assert all(0 < max(p["width"], p["height"]) <= DEGRADED for p in pictures)
    assert "Hạn chế truy cập" in page.locator("main").inner_text()
    page.goto(server + urls.HOME, wait_until="load")
    cards = [p for p in _drawn(page, ".card img") if STELE in p["src"]]
    assert cards and all(max(p["width"], p["height"]) <= DEGRADED for p in cards)


def test_the_search_box_finds_the_drum_by_typing_without_diacritics(page: Page, server: str) -> None:
    page.goto(server + urls.SEARCH, wait_until="load")
    for _ in range(40):  # keyboard only: Tab until the search box has the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.name === 'q'"):
            break
    else:
        pytest.fail("Tab never reached the search box")
    page.keyboard.type("trong dong")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "q=trong+dong" in page.url
    results = page.locator(".cards a")
    assert DRUM_VI in results.all_inner_texts()[0]
    assert results.first.get_attribute("href") == urls.item_path(DRUM)


def test_the_language_switch_changes_the_page_and_the_next_one_keeps_it(page: Page, server: str) -> None:
    page.goto(server + urls.HOME, wait_until="load")
    assert page.locator("h1").inner_text() == "Bộ sưu tập di sản"
    page.locator("a.lang-switch").click()
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.locator("h1").inner_text() == "Heritage collection"
    page.goto(server + urls.item_path(DRUM), wait_until="load")  # a plain link: the cookie keeps English
    assert page.locator("h1").inner_text() == "Ngọc Lũ bronze drum"
    page.locator("a.lang-switch").click()
    page.wait_for_load_state("load")
    assert page.locator("h1").inner_text() == DRUM_VI


def test_the_copy_button_copies_the_embed_code(browser: Browser, server: str) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    try:
        page = context.new_page()
        page.goto(server + urls.item_path(DRUM), wait_until="load")
        code = page.locator("#embed-code").input_value()
        assert code.startswith("<iframe ") and urls.embed_path(DRUM) in code
        page.locator("button.copy").click()
        page.locator(".copy-status").filter(has_text="Đã sao chép").wait_for()
    finally:
        context.close()


#: Pages beside the catalogue a visitor or an operator may open: each passes axe too (`lang` and
#: landmarks included); a dead link gets the site's bilingual page, not a line of plain text.
OTHER_PAGES = {
    "status": (urls.STATUS, 200),
    "login": ("/auth/login?lang=en", 200),
    "logout": ("/auth/2/logout", 200),
    "dead-link": ("/bai-viet/khong-co", 404),
    "mirador": ("/viewer?manifest=iiif/manifests/KH-HV-0101", 200),
    "mirador-embed": (urls.embed_path("KH-HV-0101") + "?viewer=mirador", 200),
}


@pytest.mark.parametrize("name", list(OTHER_PAGES))
def test_the_other_pages_pass_axe_too(browser: Browser, server: str, name: str) -> None:
    path, status = OTHER_PAGES[name]
    context = browser.new_context(bypass_csp=True)  # axe is injected as an inline script
    try:
        page = context.new_page()
        response = page.goto(server + path, wait_until="load")
        assert response is not None and response.status == status
        if name.startswith("mirador"):
            page.wait_for_selector(".mirador-viewer .openseadragon-canvas", timeout=30_000)
        assert page.evaluate("document.documentElement.lang") in ("vi", "en")
        found = violations(page)
        assert not found, f"{name}: {found}"
        assert page.locator("main").count() == 1  # one main landmark (Mirador's own on its pages)
    finally:
        context.close()
