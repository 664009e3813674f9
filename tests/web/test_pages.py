"""The public catalogue's pages in process (details: HTML content, languages, 404s, escaping, NFC,
JSON-LD); the real server in Chromium is tests/web/test_site_browser.py."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from iiif_server import create_app
from iiif_server.config import Settings
from iiif_server.web import embedcode, rights, urls
from tests.presentation.conftest import HEADER, write_export, write_image

DRUM = "KH-HV-0001"
DRUM_VI = "Trống đồng Ngọc Lũ"
STELE = "KH-HV-0104"  # restricted
HOSTILE = "KH-X-666"
HOSTILE_TITLE = "<script>alert(\"x\")</script> & 'quoted'"
DEGRADED = 200  # [access] degraded_size: smaller than a card's thumbnail (pages.CARD_SIZE)
ROWS = [
    [DRUM, DRUM_VI, "Ngọc Lũ bronze drum", "hiện vật", "Bảo vật quốc gia", "", "văn hóa Đông Sơn", "đồng", "63 x 79",
     "Kho Bảo tàng", "Mặt trống với ngôi sao 14 cánh.", "A 14-pointed star on the tympanum.", "public",
     "http://creativecommons.org/licenses/by/4.0/", "Bảo tàng", "Museum", "drum.tif"],
    [STELE, "Bia đá chữ Chăm cổ", "Old Cham inscription stele", "hiện vật", "Bảo vật quốc gia", "", "thế kỷ IX", "đá",
     "", "Tháp Bà Ponagar", "Bia đá.", "A stele.", "restricted", "http://rightsstatements.org/vocab/InC/1.0/",
     "Bảo tàng", "Museum", "stele.tif"],
    ["KH-HV-0103", "Ấn ngọc", "", "hiện vật", "", "", "triều Nguyễn", "ngọc bích", "", "Kho Bảo tàng",
     "Ấn ngọc tròn.", "", "public", "", "", "", "seal.png"],
    ["KH-HV-0900", "Kho bí mật", "Secret vault", "hiện vật", "", "", "", "", "", "Kho Bảo tàng", "", "", "internal",
     "", "", "", "vault.tif"],
    [HOSTILE, HOSTILE_TITLE, "", "tư liệu", "", "", "", "", "", "Kho Bảo tàng", "</textarea><b>bold</b>", "",
     "public", "", "", "", "paper.png"],
]  # fmt: skip
SIZES = {"drum.tif": (1200, 900), "stele.tif": (600, 1200), "seal.png": (300, 300), "vault.tif": (400, 400),
         "paper.png": (300, 400)}  # fmt: skip


class Page(HTMLParser):
    """The parts of a page the tests look at: elements with attributes, text, scripts' contents."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.textareas: list[str] = []
        self._in: str = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag in ("script", "textarea", "title", "h1"):
            self._in = tag
        if tag == "script":
            self.scripts.append((values, ""))
        elif tag == "textarea":
            self.textareas.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = ""

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            attrs, before = self.scripts[-1]
            self.scripts[-1] = (attrs, before + data)
        elif self._in == "textarea":
            self.textareas[-1] += data
        else:
            self.text.append(data)
            if self._in in ("title", "h1"):
                self.elements.append((f"{self._in}-text", {"text": data}))

    def all(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    def first_text(self, tag: str) -> str:
        return "".join(a["text"] for t, a in self.elements if t == f"{tag}-text")

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture(scope="module")
def site_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("site")
    for name, (width, height) in SIZES.items():
        write_image(root / "images" / name, width, height)
    write_export(root / "export.csv", ROWS, HEADER)
    settings = Settings().replace(
        images={"root": root / "images"},
        cache={"disk_dir": root / "cache", "memory_mb": 0},
        manifests={"source": root / "export.csv", "state_dir": root / "state", "check_interval": 0},
        access={"degraded_size": DEGRADED},
        server={"public_base_url": "https://museum.example/iiif-site", "access_log": "off"},
        site={"footer_vi": "Chân trang <thử>", "footer_en": "Footer <test>", "primary_colour": "#123456"},
    )
    return settings


@pytest.fixture(scope="module")
def client(site_settings: Settings) -> Iterator[FlaskClient]:
    with create_app(site_settings).test_client() as test_client:
        yield test_client


def page(client: FlaskClient, path: str, status: int = 200, **headers: str) -> tuple[TestResponse, Page]:
    response = client.get(path, headers=headers)
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "text/html"
    return response, Page(response.get_data(as_text=True))


def test_home_lists_published_records_with_facets_and_counts_in_vietnamese_by_default(client: FlaskClient) -> None:
    client.delete_cookie("lang")
    response, home = page(client, urls.HOME)
    assert home.all("html")[0]["lang"] == "vi"
    assert home.first_text("h1") == "Bộ sưu tập di sản"  # [site] title_vi "" -> [manifests] collection_label_vi
    links = {a.get("href", "") for a in home.all("a")}
    assert urls.item_path(DRUM) in links and urls.item_path(STELE) in links
    assert urls.item_path("KH-HV-0900") not in links and "Kho bí mật" not in home.plain  # hidden: never shown
    for facet in urls.FACETS:
        assert urls.browse_path(facet) in links
    assert urls.browse_path("type", "hiện vật") in links
    assert "4 hiện vật, di tích và tư liệu được công bố" in home.plain  # 5 rows, one hidden
    assert home.all("form", role="search") and home.all("input", name="q")
    assert "Chân trang <thử>" in home.plain  # the footer, escaped (parsed back as text)
    csp = response.headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert "script-src 'self'" in csp and "frame-ancestors 'self'" in csp and "unsafe-inline" not in csp
    assert home.all("style", nonce=nonce)  # the theme's colours, allowed by the answer's nonce
    assert "--primary:#123456" in response.get_data(as_text=True)
    assert not [a for _, a in home.elements if "style" in a or any(k.startswith("on") for k in a)]
    for stylesheet in home.all("link", rel="stylesheet"):
        assert stylesheet["href"].startswith("/assets/site/site.") and client.get(stylesheet["href"]).status_code == 200


def test_the_language_switch_sets_the_cookie_and_the_next_page_keeps_it(client: FlaskClient) -> None:
    client.delete_cookie("lang")
    _, home = page(client, urls.HOME)
    switch = next(a for a in home.all("a") if a.get("hreflang") == "en")["href"]
    assert parse_qs(urlsplit(switch).query) == {"lang": ["en"]}
    response, english = page(client, switch)
    assert english.all("html")[0]["lang"] == "en" and english.first_text("h1") == "Heritage collection"
    assert "lang=en" in response.headers["Set-Cookie"]
    _, item = page(client, urls.item_path(DRUM))  # no ?lang=: the cookie
    assert item.all("html")[0]["lang"] == "en" and item.first_text("h1") == "Ngọc Lũ bronze drum"
    assert "Object type" in item.plain and "Bronze" not in item.plain
    _, vietnamese = page(client, urls.item_path(DRUM) + "?lang=vi")
    assert vietnamese.first_text("h1") == DRUM_VI and "Loại hình" in vietnamese.plain
    _, fallback = page(client, urls.item_path("KH-HV-0103") + "?lang=en")  # no English title: the Vietnamese one
    assert fallback.first_text("h1") == "Ấn ngọc"
    client.delete_cookie("lang")


def test_item_page_has_images_metadata_rights_viewer_embed_oembed_and_json_ld(client: FlaskClient) -> None:
    client.delete_cookie("lang")
    _, item = page(client, urls.item_path(DRUM) + "?iiif-content=abc-_DEF")
    sources = item.all("source")
    assert [s["type"] for s in sources] == ["image/avif", "image/webp"]
    assert sources[0]["srcset"] == "/iiif/3/drum.tif/full/!800,800/0/default.avif"
    assert item.all("img", src="/iiif/3/drum.tif/full/!800,800/0/default.jpg")
    assert client.get(sources[1]["srcset"]).mimetype == "image/webp"
    for label in ("Loại hình", "Xếp hạng", "Thời kỳ", "Chất liệu", "Kích thước (cm)", "Số hiệu", "63 × 79"):
        assert label in item.plain, label
    assert item.all("a", href="http://creativecommons.org/licenses/by/4.0/", rel="license")
    assert "CC BY 4.0" in item.plain and "Mặt trống với ngôi sao 14 cánh." in item.plain
    (frame,) = item.all("iframe")
    assert frame["src"] == f"{urls.embed_path(DRUM)}?lang=vi&iiif-content=abc-_DEF" and DRUM_VI in frame["title"]
    _, english = page(client, urls.item_path(DRUM) + "?lang=en")
    assert english.all("iframe")[0]["src"] == f"{urls.embed_path(DRUM)}?lang=en"  # the viewer in the page's language
    assert f'{urls.embed_path(DRUM)}?lang=en"' in english.textareas[0]  # so is the snippet to copy
    base = "https://museum.example/iiif-site"
    manifest = f"{base}/iiif/manifests/{DRUM}"
    assert item.all("a", href=f"{manifest}?manifest={manifest}")
    assert item.all("a", href=manifest)
    (code,) = item.textareas
    assert code == embedcode.iframe(base + urls.embed_path(DRUM), DRUM_VI)
    (oembed,) = item.all("link", type="application/json+oembed")
    assert oembed["href"] == f"{base}/oembed?url={quote(base + urls.item_path(DRUM), safe='')}&format=json"
    (linked,) = [body for attrs, body in item.scripts if attrs.get("type") == "application/ld+json"]
    data = json.loads(linked)
    assert data["@type"] == "VisualArtwork" and data["name"] == DRUM_VI and data["identifier"] == DRUM
    assert data["license"] == "http://creativecommons.org/licenses/by/4.0/" and data["creditText"] == "Bảo tàng"
    assert data["url"] == base + urls.item_path(DRUM)
    assert data["image"] == [f"{base}/iiif/3/drum.tif/full/!800,800/0/default.jpg"]


def test_a_restricted_record_shows_a_degraded_thumbnail_and_the_access_note(client: FlaskClient) -> None:
    client.delete_cookie("lang")
    _, item = page(client, urls.item_path(STELE))
    images = [i["src"] for i in item.all("img") if "/iiif/3/" in i["src"]]
    assert images == [f"/iiif/3/stele.tif/full/!{DEGRADED},{DEGRADED}/0/default.jpg"]
    assert "Hạn chế truy cập" in item.plain and "liên hệ" in item.plain.lower()  # [access] access_note_vi
    assert not [e for _, e in item.elements if "full/max" in json.dumps(e)]
    assert client.get(images[0]).status_code == 200
    _, home = page(client, urls.HOME)
    thumbs = [s["srcset"] for s in home.all("source") if "stele" in s["srcset"]]
    assert thumbs and all(f"!{DEGRADED},{DEGRADED}" in s for s in thumbs)


def test_unknown_pages_are_bilingual_html_404s(client: FlaskClient) -> None:
    client.delete_cookie("lang")
    for path in (
        urls.item_path("KH-NOPE"),
        urls.item_path("KH-HV-0900"),  # hidden
        "/browse/colour",
        urls.browse_path("type", "không có"),
        "/browse/colour/x",
    ):
        _, missing = page(client, path, 404)
        assert missing.first_text("h1") == "Không tìm thấy trang", path
    _, english = page(client, urls.item_path("KH-NOPE") + "?lang=en", 404)
    assert english.first_text("h1") == "Page not found"
    client.delete_cookie("lang")


def test_a_browsers_dead_link_gets_the_sites_404_page_and_a_script_one_line(client: FlaskClient) -> None:
    browser = client.get("/bai-viet/khong-co", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code == 404 and browser.mimetype == "text/html"
    assert "Không tìm thấy trang" in browser.get_data(as_text=True)
    for accept in (None, "*/*", "application/json"):
        script = client.get("/bai-viet/khong-co", headers={"Accept": accept} if accept else {})
        assert script.status_code == 404 and script.mimetype == "text/plain"
        assert script.get_data(as_text=True).count("\n") == 1


def test_a_hostile_title_is_escaped_everywhere(client: FlaskClient) -> None:
    response, item = page(client, urls.item_path(HOSTILE))
    html = response.get_data(as_text=True)
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    assert item.first_text("h1") == HOSTILE_TITLE
    assert "</textarea><b>bold</b>" in item.plain  # the description, as text
    (linked,) = [body for attrs, body in item.scripts if attrs.get("type") == "application/ld+json"]
    assert json.loads(linked)["name"] == HOSTILE_TITLE and "</script" not in linked
    _, results = page(client, "/search?q=" + quote("alert"))
    assert HOSTILE_TITLE in results.plain and "<script>alert" not in results.plain.replace(HOSTILE_TITLE, "")


def test_search_folds_diacritics_and_an_nfd_query_finds_what_nfc_finds(client: FlaskClient) -> None:
    def found(q: str, **extra: str) -> list[str]:
        query = "&".join(f"{k}={quote(v)}" for k, v in {"q": q, **extra}.items())
        _, results = page(client, f"/search?{query}")
        return [a["href"] for a in results.all("a") if a.get("href", "").startswith("/items/")]

    nfc = found(DRUM_VI)
    assert nfc == [urls.item_path(DRUM)]
    assert found(unicodedata.normalize("NFD", DRUM_VI)) == nfc
    assert found("trong dong") == nfc and found("TRỐNG ĐỒNG") == nfc
    assert set(found("", type="hiện vật")) == {urls.item_path(i) for i in (DRUM, STELE, "KH-HV-0103")}
    assert found("", type="hiện vật", site="Tháp Bà Ponagar") == [urls.item_path(STELE)]
    _, none = page(client, "/search?q=xyzzy")
    assert "Không tìm thấy hồ sơ nào" in none.plain and "0 kết quả" in none.plain


def test_search_facets_count_and_link_the_narrowed_search(client: FlaskClient) -> None:
    _, results = page(client, "/search?q=&lang=en")
    assert "4 results" in results.plain
    narrowed = [a["href"] for a in results.all("a") if "type=" in a.get("href", "")]
    assert f"/search?type={quote_plus('hiện vật')}" in narrowed
    client.delete_cookie("lang")


def test_browse_pages_list_values_with_counts_and_their_records(client: FlaskClient) -> None:
    client.delete_cookie("lang")
    _, values = page(client, urls.browse_path("site"))
    assert values.all("a", href=urls.browse_path("site", "Kho Bảo tàng"))
    assert "Kho Bảo tàng 3 hồ sơ" in values.plain  # the hidden record is not counted
    _, records = page(client, urls.browse_path("site", "Kho Bảo tàng"))
    items = {a["href"] for a in records.all("a") if a.get("href", "").startswith("/items/")}
    assert items == {urls.item_path(i) for i in (DRUM, "KH-HV-0103", HOSTILE)}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("q=" + "a" * 201, b"q is longer than 200 characters"),
        ("page=0", b"page must be a whole number from 1"),
        ("page=x", b"page must be a whole number from 1"),
        ("page=" + "9" * 5000, b"page must be a whole number from 1"),
        ("type=" + "a" * 201, b"type is longer than 200 characters"),
    ],
)
def test_bad_search_input_is_a_one_line_400(client: FlaskClient, query: str, message: str) -> None:
    response = client.get(f"/search?{query}")
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert message in response.data and response.data.count(b"\n") <= 1


def test_a_page_past_the_last_shows_the_last(client: FlaskClient) -> None:
    _, results = page(client, "/search?q=trong+dong&page=99")
    assert [a["href"] for a in results.all("a") if a.get("href", "").startswith("/items/")] == [urls.item_path(DRUM)]


def test_the_operators_table_moved_to_status(client: FlaskClient) -> None:
    status = client.get(urls.STATUS).get_data(as_text=True)
    assert "<h2>Manifests</h2>" in status and f"/iiif/manifests/{DRUM}" in status
    assert "<h2>Manifests</h2>" not in client.get(urls.HOME).get_data(as_text=True)


def test_templates_and_assets_are_package_data() -> None:
    """A non-editable install must carry the templates and the site's static files."""
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"web/templates/*.html"' in text and '"web/static/**/*"' in text


def test_a_manifests_homepage_is_the_item_page(client: FlaskClient) -> None:
    """No ``[manifests] item_homepage``: the record's page in this catalogue (it was the Mirador viewer)."""
    manifest = client.get(f"/iiif/manifests/{quote(DRUM)}").get_json()
    (homepage,) = manifest["homepage"]
    assert homepage["id"] == "https://museum.example/iiif-site" + urls.item_path(DRUM)
    assert homepage["label"] == {"vi": [DRUM_VI], "en": ["Ngọc Lũ bronze drum"]}


def test_the_theme_logo_title_and_footer_come_from_site_settings(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', encoding="utf-8")
    settings = Settings().replace(
        images={"root": tmp_path},
        manifests={"source": tmp_path / "none.csv", "state_dir": tmp_path / "state"},
        server={"access_log": "off"},
        site={
            "logo": str(logo),
            "title_vi": "Bảo tàng <Khánh Hòa>",
            "title_en": "Khánh Hòa Museum",
            "footer_en": "Nha Trang",
        },
    )
    with create_app(settings).test_client() as themed:
        _, home = page(themed, "/?lang=en")
        assert home.first_text("h1") == "Khánh Hòa Museum" and "Nha Trang" in home.plain
        (image,) = home.all("img", **{"class": "logo"})
        assert image["src"].startswith("/assets/theme/logo.") and image["src"].endswith(".svg")
        served = themed.get(image["src"])
        assert served.status_code == 200 and served.mimetype == "image/svg+xml"
        _, vietnamese = page(themed, "/?lang=vi")
        assert vietnamese.first_text("title") == "Bảo tàng <Khánh Hòa>"
        assert "0 hiện vật" in vietnamese.plain  # no export yet: an empty catalogue, not an error


def test_rights_read_by_name() -> None:
    name = rights.name
    assert name("http://creativecommons.org/licenses/by-sa/4.0/") == "CC BY-SA 4.0"
    assert name("http://creativecommons.org/publicdomain/mark/1.0/") == "Public Domain Mark 1.0"
    assert name("http://creativecommons.org/publicdomain/zero/1.0/") == "CC0 1.0"
    assert name("http://rightsstatements.org/vocab/InC-EDU/1.0/") == "In Copyright – Educational Use Permitted"
    assert name("https://museum.example/terms") == "https://museum.example/terms"


def test_results_are_paged_with_previous_and_next_links(site_settings: Settings) -> None:
    with create_app(site_settings.replace(site={"page_size": 2})).test_client() as paged:
        _, first = page(paged, "/search?lang=en")
        assert "4 results" in first.plain and "Page 1 of 2" in first.plain
        assert first.all("a", rel="next", href="/search?page=2") and not first.all("a", rel="prev")
        _, second = page(paged, "/search?page=2")
        assert "Page 2 of 2" in second.plain and second.all("a", rel="prev", href="/search")
        shown = [a["href"] for p in (first, second) for a in p.all("a") if a.get("href", "").startswith("/items/")]
        assert len(shown) == len(set(shown)) == 4
        _, browsing = page(paged, urls.browse_path("type", "hiện vật") + "?page=2")
        assert browsing.all("a", rel="prev", href=urls.browse_path("type", "hiện vật"))
