"""The catalogue's search (web/search.py): the FTS5 index in-process, over records parsed by the real parser.

The ``/search`` page over HTTP is tested with the page (another module); here: what the index finds, in
which order, with which facets and snippets, for any string, while being rebuilt.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iiif_server.config import Settings
from iiif_server.errors import ConfigError
from iiif_server.presentation.catalogue import Snapshot
from iiif_server.presentation.records import ColumnMap, Record, Text, parse_records
from iiif_server.presentation.vocabulary import Vocabulary
from iiif_server.services import Services
from iiif_server.web import search
from iiif_server.web.search import FACET_FIELDS, CatalogueSearch, Query, SearchIndex, fold
from tests.presentation.conftest import HEADER, ROWS, SIZES, write_export, write_image
from tests.presentation.test_demo import demo_settings

CC0 = "http://creativecommons.org/publicdomain/mark/1.0/"
LONG = (
    "Quần thể tháp Chăm trên đồi Cù Lao, xây dựng qua nhiều thế kỷ bằng gạch nung và đá sa thạch; "
    "trong đợt khảo sát năm 1998, người ta tìm thấy một trống đồng nhỏ chôn cạnh tháp Nam, nay lưu "
    "tại kho của bảo tàng cùng nhiều mảnh gốm và bia đá khắc chữ Chăm cổ chưa được giải mã hết."
)


def row(inventory: str, title_vi: str, title_en: str, object_type: str, rank: str, period: str, material: str,
        site: str, description_vi: str = "", description_en: str = "") -> list[str]:  # fmt: skip
    return [inventory, title_vi, title_en, object_type, rank, "", period, material, "", site, description_vi,
            description_en, "public", CC0, "", "", f"{inventory}.tif"]  # fmt: skip


#: Export order on purpose not inventory order (browsing sorts by inventory number).
FIXTURE = [
    row("KH-DT-0001", "Tháp Bà Ponagar", "Po Nagar Cham Towers", "di tích kiến trúc", "Di tích quốc gia đặc biệt",
        "thế kỷ VIII–XIII", "gạch; đá sa thạch", "Tháp Bà Ponagar", LONG, "Cham temple complex."),
    row("KH-HV-0101", "Tượng thần Shiva", "Shiva statue", "hiện vật", "Hiện vật trưng bày", "thế kỷ X",
        "đá sa thạch", "Kho Bảo tàng", "Tượng đá Chăm; ba mặt chụp.", "Cham sandstone sculpture."),
    row("KH-HV-0001", "Trống đồng Ngọc Lũ", "Ngọc Lũ bronze drum", "hiện vật", "Bảo vật quốc gia",
        "văn hóa Đông Sơn", "đồng", "Kho Bảo tàng", "Mặt Trống đồng với ngôi sao 14 cánh.", "Drum face."),
    row("KH-TL-0001", "Sắc phong", "Royal decree", "tư liệu", "", "triều Nguyễn", "giấy dó", "Kho Bảo tàng",
        "Sắc phong thời Nguyễn; chữ Hán Nôm.", "A royal decree."),
    row("KH-HV-0102", "Bình gốm ưu tú", "", "hiện vật", "", "", "gốm", "Kho Bảo tàng", "Bình gốm thời tiền sử."),
    row("KH-HV-0103", "Ấn ngọc", "", "hiện vật", "Bảo vật quốc gia", "triều Nguyễn", "ngọc", "Tháp Bà Ponagar",
        "Ấn ngọc tròn; chưa có bản dịch tiếng Anh."),
]  # fmt: skip
VOCABULARY = Vocabulary(
    {
        ("material", "đồng"): "bronze",
        ("object_type", "hiện vật"): "artefact",
        ("site", "kho bảo tàng"): "Museum storehouse",
        ("period", "văn hóa đông sơn"): "Đông Sơn culture",
    }
)
INVENTORY_ORDER = ["KH-DT-0001", "KH-HV-0001", "KH-HV-0101", "KH-HV-0102", "KH-HV-0103", "KH-TL-0001"]


def records(rows: list[list[str]] = FIXTURE) -> list[Record]:
    parsed = parse_records(((n, dict(zip(HEADER, r, strict=True))) for n, r in enumerate(rows, 2)), ColumnMap())
    assert parsed.problems == []
    return parsed.records


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    built = SearchIndex()
    built.update(records(), VOCABULARY)
    return built


def found(index: SearchIndex, text: str, **filters: str) -> list[str]:
    return [hit.record.inventory_number for hit in index.search(Query(text, filters, page_size=50)).hits]


# -- folding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("đ", "d"), ("Đ", "d"), ("ơ", "o"), ("Ơ", "o"), ("ư", "u"), ("Ư", "u"), ("ă", "a"), ("Ă", "a"),
        ("â", "a"), ("ê", "e"), ("ô", "o"), ("Ô", "o"),
        ("à á ả ã ạ", "a a a a a"), ("ằ ắ ẳ ẵ ặ", "a a a a a"), ("ầ ấ ẩ ẫ ậ", "a a a a a"),
        ("è é ẻ ẽ ẹ ề ế ể ễ ệ", "e e e e e e e e e e"), ("ì í ỉ ĩ ị", "i i i i i"),
        ("ò ó ỏ õ ọ ồ ố ổ ỗ ộ ờ ớ ở ỡ ợ", "o o o o o o o o o o o o o o o"),
        ("ù ú ủ ũ ụ ừ ứ ử ữ ự", "u u u u u u u u u u"), ("ỳ ý ỷ ỹ ỵ", "y y y y y"),
        ("Trống Đồng", "trong dong"), ("TRỐNG ĐỒNG", "trong dong"), ("Ngọc Lũ", "ngoc lu"),
        (unicodedata.normalize("NFD", "trống đồng"), "trong dong"), ("KH-HV-0001", "kh-hv-0001"),
    ],
)  # fmt: skip
def test_folding_table(text: str, folded: str) -> None:
    assert fold(text) == folded
    nfc = unicodedata.normalize("NFC", text)
    assert search._folded_with_origins(nfc)[0] == folded  # the snippets' per-character folding agrees


@given(st.text())
def test_folding_one_character_at_a_time_is_folding(text: str) -> None:
    """Snippets fold per character and map back to the original: the same folding as the index's."""
    nfc = unicodedata.normalize("NFC", text)
    folded, origins = search._folded_with_origins(nfc)
    assert folded == fold(nfc)
    assert len(origins) == len(folded) and origins == sorted(origins)


# -- what is found, in which order -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["trong dong", "Trống Đồng", "trống đồng", "TRONG DONG", unicodedata.normalize("NFD", "Trống Đồng"), "trong do"],
)
def test_the_drum_is_found_however_it_is_typed(index: SearchIndex, text: str) -> None:
    results = index.search(Query(text))
    # the title match first; the tower, whose description mentions a drum, after it
    assert [h.record.inventory_number for h in results.hits] == ["KH-HV-0001", "KH-DT-0001"]
    assert results.total == 2
    # snippets are the records' own text, diacritics and all, around the match
    assert results.hits[0].snippet == "Mặt Trống đồng với ngôi sao 14 cánh."
    tower = results.hits[1].snippet
    assert "trống đồng nhỏ" in tower and tower.startswith("…") and tower.endswith("…")
    assert len(tower) <= search.SNIPPET_CHARS + 2 and tower.strip("…") in LONG


@pytest.mark.parametrize("text", ["KH-HV-0001", "kh hv 0001", "kh-hv-0001", "KHHV0001", "KH HV 0001"])
def test_an_inventory_number_however_it_is_typed(index: SearchIndex, text: str) -> None:
    assert found(index, text) == ["KH-HV-0001"]


def test_every_indexed_field_is_searched(index: SearchIndex) -> None:
    assert found(index, "shiva statue") == ["KH-HV-0101"]  # English title
    assert found(index, "royal decree") == ["KH-TL-0001"]  # English title and description
    assert found(index, "giay do") == ["KH-TL-0001"]  # material
    assert sorted(found(index, "trieu nguyen")) == ["KH-HV-0103", "KH-TL-0001"]  # period (and a description)
    assert found(index, "bronze") == ["KH-HV-0001"]  # English title and the vocabulary's English of đồng
    assert found(index, "dong son culture") == ["KH-HV-0001"]  # the vocabulary's English of the period only
    assert sorted(found(index, "museum storehouse")) == [*INVENTORY_ORDER[1:-2], "KH-TL-0001"]  # site's English
    assert found(index, "dac biet") == ["KH-DT-0001"]  # heritage rank
    assert found(index, "uu tu") == ["KH-HV-0102"]  # ư
    assert found(index, "an ngoc") == ["KH-HV-0103"]  # Ấ


def test_prefix_while_typing_and_whole_words_once_typed(index: SearchIndex) -> None:
    assert found(index, "shiv") == ["KH-HV-0101"]
    assert found(index, "shiv ") == []  # a finished word is a word
    assert found(index, "xyzzy") == []


def test_a_title_match_ranks_above_a_description_match(index: SearchIndex) -> None:
    assert found(index, "sac phong")[0] == "KH-TL-0001"
    assert found(index, "gom") == ["KH-HV-0102", "KH-DT-0001"]  # title + description, then description only


# -- facets, paging, filters -----------------------------------------------------------------------------


def facet_counts(results: search.Results) -> dict[str, dict[str, int]]:
    return {name: {f.value: f.count for f in values} for name, values in results.facets.items()}


def test_facets_count_every_matching_record(index: SearchIndex) -> None:
    everything = index.search(Query("", page_size=1))  # counted over all matches, not the page's one
    assert everything.total == 6 and len(everything.hits) == 1
    assert facet_counts(everything) == {  # counted by hand from FIXTURE
        "object_type": {"hiện vật": 4, "di tích kiến trúc": 1, "tư liệu": 1},
        "site": {"Kho Bảo tàng": 4, "Tháp Bà Ponagar": 2},
        "period": {"triều Nguyễn": 2, "thế kỷ VIII–XIII": 1, "thế kỷ X": 1, "văn hóa Đông Sơn": 1},
        "heritage_rank": {"Bảo vật quốc gia": 2, "Di tích quốc gia đặc biệt": 1, "Hiện vật trưng bày": 1},
    }
    types = everything.facets["object_type"]
    assert [f.value for f in types] == ["hiện vật", "di tích kiến trúc", "tư liệu"]  # most first, then by name
    assert types[0].label == Text("hiện vật", "artefact") and types[1].label.en == ""
    assert list(everything.facets) == list(FACET_FIELDS)
    chams = index.search(Query("cham"))
    assert chams.total == 2
    assert facet_counts(chams)["object_type"] == {"hiện vật": 1, "di tích kiến trúc": 1}
    assert index.values("site") == everything.facets["site"]  # the browse pages' counts


def test_browsing_pages_in_inventory_order(index: SearchIndex) -> None:
    pages = [index.search(Query("", page=n, page_size=4)) for n in (1, 2, 3)]
    assert [[h.record.inventory_number for h in p.hits] for p in pages] == [
        INVENTORY_ORDER[:4],
        INVENTORY_ORDER[4:],
        [],
    ]
    assert {p.total for p in pages} == {6}
    assert all(h.snippet == "" for p in pages for h in p.hits)


def test_filters_alone_and_with_text(index: SearchIndex) -> None:
    kept = index.search(Query("", {"site": "Kho Bảo tàng", "object_type": "hiện vật"}))
    assert [h.record.inventory_number for h in kept.hits] == ["KH-HV-0001", "KH-HV-0101", "KH-HV-0102"]
    assert facet_counts(kept)["site"] == {"Kho Bảo tàng": 3}
    assert found(index, "cham", site="Tháp Bà Ponagar") == ["KH-DT-0001"]
    assert found(index, "trieu nguyen", object_type="tư liệu") == ["KH-TL-0001"]
    nfd = unicodedata.normalize("NFD", "Tháp Bà Ponagar")
    assert found(index, "", site=nfd) == ["KH-DT-0001", "KH-HV-0103"]  # NFC in
    assert found(index, "", site="tháp bà ponagar") == []  # a facet value is exact
    assert found(index, "", material="ngọc") == ["KH-HV-0103"]  # materials filter too
    assert found(index, "", nothing="x") == []
    assert index.get("KH-HV-0001") is not None and index.get("KH-XX-0000") is None


HOSTILE = [
    '"', '""', '"trong', "trong\"", "*", "**", "trong*", ":", "title:trong", "(", ")", "(trong", "NEAR", "NEAR(a b)",
    "NEAR(trong dong, 2)", "-", "-trong", "trong -dong", "AND", "OR", "NOT", "trong AND", "OR dong", "^trong",
    "{title}: x", "'", "';DROP TABLE records;--", "\x00", "trong\x00dong", "\ud800", "a\udfffb", "   ", "\t\n",
    "a" * 10_000, "trong " * 500, "🥁 trống", "_", "__init__", "%", "\\", "+", "a+b", "[x]",
]  # fmt: skip


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_gives_results_or_none(index: SearchIndex, text: str) -> None:
    results = index.search(Query(text))
    assert results.total == len(results.hits) or results.total > len(results.hits) == 24


def test_hostile_filters_and_pages_give_results_or_none(index: SearchIndex) -> None:
    assert index.search(Query("", {"site": "\ud800"})).total == 0
    assert index.search(Query("", {"site": "x' OR '1'='1"})).total == 0
    assert index.search(Query("", {"r.site": "x"})).total == 0
    assert index.search(Query("trong", page=10**30)).hits == ()
    assert len(index.search(Query("", page=0, page_size=0)).hits) == 1
    assert len(index.search(Query("", page=-3)).hits) == 6


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(exclude_categories=())), value=st.text(), page=st.integers(), size=st.integers())
def test_any_string_is_a_query(index: SearchIndex, text: str, value: str, page: int, size: int) -> None:
    results = index.search(Query(text, {"site": value}, page=page, page_size=size))
    assert results.total >= len(results.hits)
    assert index.search(Query(text)).total >= 0


def test_a_python_without_fts5_stops_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sqlite3.connect

    class NoFts5:
        def __init__(self, connection: sqlite3.Connection) -> None:
            self.connection = connection

        def execute(self, sql: str) -> None:
            raise sqlite3.OperationalError("no such module: fts5")

        def close(self) -> None:
            self.connection.close()

    monkeypatch.setattr(search.sqlite3, "connect", lambda *a, **k: NoFts5(real(":memory:")))
    search.require_fts5.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"search needs SQLite ≥ 3\.36 with FTS5.*no such module: fts5"):
            CatalogueSearch(Snapshot)
    finally:
        search.require_fts5.cache_clear()


# -- rebuilds and threads ---------------------------------------------------------------------------


@pytest.fixture
def catalogue_settings(tmp_path: Path) -> Settings:
    """A real export and image root (the presentation tests' collection)."""
    for name, (width, height) in SIZES.items():
        write_image(tmp_path / "images" / name, width, height)
    write_export(tmp_path / "export.csv", ROWS)
    return Settings().replace(
        images={"root": tmp_path / "images"},
        cache={"disk_dir": tmp_path / "cache", "memory_mb": 0},
        manifests={"source": tmp_path / "export.csv", "state_dir": tmp_path / "state", "check_interval": 0},
    )


def test_the_index_follows_the_catalogue(catalogue_settings: Settings) -> None:
    services = Services(catalogue_settings)
    catalogue_search = services.search
    first = catalogue_search.index()
    assert [h.record.inventory_number for h in first.search(Query("binh gom")).hits] == ["KH-HV-0102"]
    assert first.get("KH-HV-0103") is None  # internal: not published, not searchable
    assert catalogue_search.index() is first  # unchanged snapshot: the same index
    edited = [list(r) for r in ROWS]
    edited[1][1] = "Bình gốm men lam"
    write_export(catalogue_settings.manifests.source, edited)
    second = catalogue_search.index()
    assert second is not first
    assert second.search(Query("men lam")).hits[0].record.title.vi == "Bình gốm men lam"
    assert first.search(Query("men lam")).total == 0  # the old index is left as it was


def test_a_forked_worker_builds_its_own_index(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = Snapshot(published=records(), vocabulary=VOCABULARY)
    catalogue_search = CatalogueSearch(lambda: snapshot)
    parent = catalogue_search.index()
    assert catalogue_search.index() is parent
    monkeypatch.setattr(search.os, "getpid", lambda: -1)  # as after a fork: the parent's connections are not ours
    child = catalogue_search.index()
    assert child is not parent and child.search(Query("trong dong")).hits[0].record.inventory_number == "KH-HV-0001"


def test_searches_go_on_on_the_old_index_while_the_new_one_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    old = Snapshot(published=records(), vocabulary=VOCABULARY)
    new = Snapshot(published=records(FIXTURE[:2]), vocabulary=VOCABULARY)
    snapshots = [old]
    catalogue_search = CatalogueSearch(lambda: snapshots[-1])
    before = catalogue_search.index()
    building, release = threading.Event(), threading.Event()
    real_update = SearchIndex.update

    def slow_update(self: SearchIndex, published: list[Record], vocabulary: Vocabulary) -> None:
        building.set()
        assert release.wait(10)
        real_update(self, published, vocabulary)

    monkeypatch.setattr(SearchIndex, "update", slow_update)
    snapshots.append(new)
    builder = threading.Thread(target=catalogue_search.index)
    builder.start()
    try:
        assert building.wait(10)
        start = time.monotonic()
        during = catalogue_search.index()
        assert time.monotonic() - start < 1 and during is before  # not blocked behind the build
        assert during.search(Query("")).total == 6
    finally:
        release.set()
        builder.join(10)
    assert catalogue_search.index().search(Query("")).total == 2


def test_many_threads_search_while_the_index_is_rebuilt() -> None:
    small, large = records(FIXTURE[:3]), records()
    snapshots = [Snapshot(published=large, vocabulary=VOCABULARY)]
    catalogue_search = CatalogueSearch(lambda: snapshots[-1])
    catalogue_search.index()
    errors: list[BaseException] = []
    totals: set[tuple[int, int]] = set()
    stop = threading.Event()

    def searching() -> None:
        try:
            while not stop.is_set():
                index = catalogue_search.index()
                everything = index.search(Query(""))
                drum = index.search(Query("trong dong", page_size=1))
                assert everything.total in (3, 6) and len(everything.hits) == everything.total
                assert drum.hits[0].record.inventory_number == "KH-HV-0001"
                totals.add((everything.total, drum.total))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=searching) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for n in range(30):
            snapshots.append(Snapshot(published=small if n % 2 else large, vocabulary=VOCABULARY))
            catalogue_search.index()
            time.sleep(0.005)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == []
    assert totals == {(3, 2), (6, 2)}  # both generations were searched, each whole


def test_the_demo_collection_finds_the_drum(demo_root: Path, tmp_path: Path) -> None:
    """The shipped demo through the composition root (slow: the demo images)."""
    index = Services(demo_settings(demo_root, tmp_path)).search.index()
    for text in ("trong dong", "Trống Đồng", "KH-HV-0001", "dong son culture"):  # the last: the vocabulary's English
        hits = index.search(Query(text)).hits
        assert hits and hits[0].record.inventory_number == "KH-HV-0001", text
    assert index.search(Query("trong dong")).hits[0].snippet.startswith("Mặt trống")
    assert index.get("KH-HV-0104") is not None  # restricted records are published, so found
    assert {f.value for f in index.values("object_type")} >= {"hiện vật", "tư liệu"}
