"""Export rows -> Records and Problems: every bad-row kind, messy cells, rights URIs, dates, column maps.

Pure (no files): rows are given as ``(row number, {column: value})`` like ``exports.read_export`` yields them.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Mapping
from dataclasses import FrozenInstanceError, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from iiif_server.presentation.records import (
    GROUPABLE,
    ColumnMap,
    Problem,
    Record,
    Text,
    canonical_rights,
    clean,
    missing_columns,
    parse_date,
    parse_records,
    split_images,
)

COLUMNS = ColumnMap()
DEMO_EXPORT = Path(__file__).resolve().parents[2] / "iiif_server" / "demo_collection" / "collection.csv"
CC_BY = "http://creativecommons.org/licenses/by/4.0/"
EXPECTED = "(expected YYYY, YYYY-MM, YYYY-MM-DD, DD/MM/YYYY, MM/YYYY or năm YYYY)"


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def cells(**overrides: object) -> dict[str, object]:
    """One complete, valid export row (the demo's Shiva statue) with some cells replaced."""
    row: dict[str, object] = {
        "inventory_no": "KH-HV-0101",
        "title_vi": "Tượng thần Shiva",
        "title_en": "Shiva statue",
        "object_type": "hiện vật",
        "heritage_rank": "Hiện vật trưng bày",
        "date": "",
        "period": "thế kỷ X",
        "material": "đá sa thạch",
        "dimensions_cm": "82 x 41 x 30",
        "site": "Kho Bảo tàng",
        "description_vi": "Tượng đá Chăm; ba mặt chụp.",
        "description_en": "Cham sandstone sculpture; three views.",
        "access": "public",
        "rights": CC_BY,
        "attribution_vi": "Bảo tàng Di sản tỉnh",
        "attribution_en": "Provincial Heritage Museum",
        "images": "hien-vat/KH-HV-0101 mặt trước.tif;hien-vat/KH-HV-0101 mặt sau.tif",
    }
    row.update(overrides)
    return row


def good(number: int) -> dict[str, object]:
    """A valid row with its own inventory number and image."""
    return cells(inventory_no=f"KH-OK-{number:04d}", images=f"ok/{number}.tif")


def numbered(*rows: Mapping[str, object], first: int = 2) -> list[tuple[int, Mapping[str, object]]]:
    """Rows numbered like a spreadsheet: the header is row 1, so data starts on row 2."""
    return list(enumerate(rows, start=first))


def one_problem(row: Mapping[str, object], columns: ColumnMap = COLUMNS) -> Problem:
    parsed = parse_records(numbered(row), columns)
    assert parsed.records == []
    assert len(parsed.problems) == 1
    return parsed.problems[0]


def one_record(row: Mapping[str, object], columns: ColumnMap = COLUMNS) -> Record:
    parsed = parse_records(numbered(row), columns)
    assert parsed.problems == []
    assert len(parsed.records) == 1
    return parsed.records[0]


# -- a good row ------------------------------------------------------------------------------------------------


def test_a_good_row_becomes_a_record_with_every_field() -> None:
    record = one_record(cells(date="1850-03-12"))
    assert record == Record(
        row=2,
        inventory_number="KH-HV-0101",
        title=Text("Tượng thần Shiva", "Shiva statue"),
        description=Text("Tượng đá Chăm; ba mặt chụp.", "Cham sandstone sculpture; three views."),
        object_type="hiện vật",
        heritage_rank="Hiện vật trưng bày",
        date="1850-03-12",
        nav_date=datetime(1850, 3, 12, tzinfo=UTC),
        period="thế kỷ X",
        material="đá sa thạch",
        dimensions="82 x 41 x 30",
        site="Kho Bảo tàng",
        access="public",
        rights=CC_BY,
        attribution=Text("Bảo tàng Di sản tỉnh", "Provincial Heritage Museum"),
        images=("hien-vat/KH-HV-0101 mặt trước.tif", "hien-vat/KH-HV-0101 mặt sau.tif"),
    )


def test_records_are_frozen() -> None:
    record = one_record(cells())
    with pytest.raises(FrozenInstanceError):
        record.inventory_number = "other"  # type: ignore[misc]


def test_only_the_required_columns_are_needed() -> None:
    record = one_record({"inventory_no": "KH-1", "images": "a.tif"})
    assert record.inventory_number == "KH-1"
    assert record.images == ("a.tif",)
    assert record.title == Text() and not record.title
    assert record.title.language_map() == {}
    assert (record.date, record.nav_date, record.rights, record.access, record.site) == ("", None, "", "", "")


def test_rows_keep_their_given_numbers_and_order() -> None:
    rows = [(7, good(1)), (3, good(2)), (12, good(3))]
    parsed = parse_records(rows, COLUMNS)
    assert [(r.row, r.inventory_number) for r in parsed.records] == [
        (7, "KH-OK-0001"),
        (3, "KH-OK-0002"),
        (12, "KH-OK-0003"),
    ]


def test_no_rows_no_records() -> None:
    parsed = parse_records([], COLUMNS)
    assert parsed.records == [] and parsed.problems == []


# -- bad rows: each kind is reported with its row number and reason; the rest still build -----------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(cells(inventory_no=""), "missing inventory number (column 'inventory_no')", id="empty-inventory"),
        pytest.param(
            cells(inventory_no="   "), "missing inventory number (column 'inventory_no')", id="blank-inventory"
        ),
        pytest.param(
            {k: v for k, v in cells().items() if k != "inventory_no"},
            "missing inventory number (column 'inventory_no')",
            id="no-inventory-cell",
        ),
        pytest.param(cells(inventory_no=None), "missing inventory number (column 'inventory_no')", id="none-inventory"),
        pytest.param(cells(images=""), "no image files listed (column 'images')", id="empty-images"),
        pytest.param(cells(images=" ; ;; / "), "no image files listed (column 'images')", id="only-separators"),
        pytest.param(cells(images=[]), "no image files listed (column 'images')", id="empty-list"),
        pytest.param(
            {k: v for k, v in cells().items() if k != "images"},
            "no image files listed (column 'images')",
            id="no-images-cell",
        ),
        pytest.param(
            cells(rights="http://example.org/rights/"),
            "unknown rights URI 'http://example.org/rights/' (use a Creative Commons or RightsStatements.org URI)",
            id="unknown-rights",
        ),
        pytest.param(
            cells(rights="CC BY 4.0"),
            "unknown rights URI 'CC BY 4.0' (use a Creative Commons or RightsStatements.org URI)",
            id="rights-as-words",
        ),
        pytest.param(
            cells(date="31/02/1990"),
            "date '31/02/1990' is not a real date (1990-02 has 28 days)",
            id="date-31/02/1990-not-real",
        ),
        pytest.param(
            cells(date="1850/03/12"), f"malformed date '1850/03/12' {EXPECTED}", id="date-yyyy/mm/dd-malformed"
        ),
        pytest.param(
            cells(date="1850-13-01"), "date '1850-13-01' is not a real date (there is no month 13)", id="date-month-13"
        ),
        pytest.param(
            cells(date="1850-02-30"),
            "date '1850-02-30' is not a real date (1850-02 has 28 days)",
            id="date-february-30",
        ),
        pytest.param(
            cells(date="thế kỷ X"),
            f"malformed date 'thế kỷ X' {EXPECTED}",
            id="date-free-text-period",
        ),
        pytest.param(cells(date="0000"), "date '0000' is before year 1; put it in the period column", id="date-year-0"),
        pytest.param(cells(inventory_no="KH/HV/0101"), "inventory number must not contain '/'", id="inventory-slash"),
        pytest.param(cells(inventory_no="/"), "inventory number must not contain '/'", id="inventory-only-slash"),
        pytest.param(cells(inventory_no=".."), "inventory number must not contain '/'", id="inventory-dotdot"),
        pytest.param(cells(inventory_no="."), "inventory number must not contain '/'", id="inventory-dot"),
    ],
)
def test_a_bad_row_is_reported_by_number_and_skipped(bad: dict[str, object], reason: str) -> None:
    parsed = parse_records(numbered(good(1), bad, good(3)), COLUMNS)
    inventory = clean(bad.get("inventory_no"))
    assert parsed.problems == [Problem(3, inventory, reason)]
    assert [(r.row, r.inventory_number) for r in parsed.records] == [(2, "KH-OK-0001"), (4, "KH-OK-0003")]


def test_duplicate_inventory_number_skips_the_later_row_and_names_the_first() -> None:
    first = cells(inventory_no="KH-DUP-1", title_en="first", images="a.tif")
    second = cells(inventory_no="KH-DUP-1", title_en="second", images="b.tif")
    third = cells(inventory_no=" KH-DUP-1 ", title_en="third", images="c.tif")  # the same once stripped
    parsed = parse_records(numbered(first, good(3), second, third), COLUMNS)
    assert parsed.problems == [
        Problem(4, "KH-DUP-1", "duplicate inventory number (first on row 2)"),
        Problem(5, "KH-DUP-1", "duplicate inventory number (first on row 2)"),
    ]
    assert [(r.row, r.inventory_number, r.title.en, r.images) for r in parsed.records] == [
        (2, "KH-DUP-1", "first", ("a.tif",)),
        (3, "KH-OK-0003", "Shiva statue", ("ok/3.tif",)),
    ]
    assert str(parsed.problems[0]) == "row 4 (KH-DUP-1): duplicate inventory number (first on row 2)"


def test_duplicates_are_found_across_unicode_forms() -> None:
    parsed = parse_records(numbered(cells(inventory_no="HV-Đá-1"), cells(inventory_no=nfd("HV-Đá-1 "))), COLUMNS)
    assert [r.inventory_number for r in parsed.records] == ["HV-Đá-1"]
    assert parsed.problems == [Problem(3, "HV-Đá-1", "duplicate inventory number (first on row 2)")]


def test_every_bad_kind_in_one_export() -> None:
    rows = numbered(
        good(2),
        cells(inventory_no=""),
        good(4),
        cells(inventory_no="KH-OK-0002", images="dup.tif"),
        cells(inventory_no="KH-NOIMG", images=""),
        cells(inventory_no="KH-RIGHTS", rights="https://example.org/licence"),
        cells(inventory_no="KH-D1", date="1850/03/12"),
        cells(inventory_no="KH-D2", date="1850-13-01"),
        cells(inventory_no="KH-D3", date="1850-02-30"),
        cells(inventory_no="KH-D4", date="thế kỷ X"),
        cells(inventory_no="KH/SLASH", images="slash.tif"),
        good(13),
    )
    parsed = parse_records(rows, COLUMNS)
    assert [str(p) for p in parsed.problems] == [
        "row 3: missing inventory number (column 'inventory_no')",
        "row 5 (KH-OK-0002): duplicate inventory number (first on row 2)",
        "row 6 (KH-NOIMG): no image files listed (column 'images')",
        "row 7 (KH-RIGHTS): unknown rights URI 'https://example.org/licence' "
        "(use a Creative Commons or RightsStatements.org URI)",
        f"row 8 (KH-D1): malformed date '1850/03/12' {EXPECTED}",
        "row 9 (KH-D2): date '1850-13-01' is not a real date (there is no month 13)",
        "row 10 (KH-D3): date '1850-02-30' is not a real date (1850-02 has 28 days)",
        f"row 11 (KH-D4): malformed date 'thế kỷ X' {EXPECTED}",
        "row 12 (KH/SLASH): inventory number must not contain '/'",
    ]
    assert [(r.row, r.inventory_number) for r in parsed.records] == [
        (2, "KH-OK-0002"),
        (4, "KH-OK-0004"),
        (13, "KH-OK-0013"),
    ]


def test_a_bad_row_does_not_claim_its_inventory_number() -> None:
    """Only a row that built counts as the first occurrence: a later bad duplicate reports its own reason."""
    parsed = parse_records(numbered(good(1), cells(inventory_no="KH-OK-0001", date="1850/03")), COLUMNS)
    assert [r.row for r in parsed.records] == [2]
    assert parsed.problems == [Problem(3, "KH-OK-0001", f"malformed date '1850/03' {EXPECTED}")]


def test_problem_text() -> None:
    assert str(Problem(5, "KH-1", "no image files listed")) == "row 5 (KH-1): no image files listed"
    assert str(Problem(9, "", "missing inventory number")) == "row 9: missing inventory number"


# -- messy input -------------------------------------------------------------------------------------------------


def test_stray_whitespace_in_cells_and_headers_is_removed() -> None:
    row = {
        "  inventory_no ": "  KH-HV-0101\t",
        "title_vi\t": " Tượng   thần\u00a0Shiva ",
        " title_en": "\tShiva\n statue ",
        "date ": " 1850 ",
        " access ": " Public ",
        "rights": f"  {CC_BY}  ",
        " images ": "  a.tif  ;   b c.tif ",
    }
    record = one_record(row)
    assert record.inventory_number == "KH-HV-0101"
    assert record.title == Text("Tượng thần Shiva", "Shiva statue")
    assert (record.date, record.nav_date) == ("1850", datetime(1850, 1, 1, tzinfo=UTC))
    assert record.access == "public"  # lower-cased too
    assert record.rights == CC_BY
    assert record.images == ("a.tif", "b c.tif")


def test_extra_and_unnamed_columns_are_ignored() -> None:
    row: dict[str | None, object] = {"ghi_chu": "internal note", "Unnamed: 17": ""}
    row.update(cells())
    row[None] = ["overflow", "cells"]  # csv.DictReader's key for cells beyond the header
    record = one_record(cast(dict[str, object], row))
    assert record == one_record(cells())
    assert "internal note" not in repr(record)


def test_short_rows_have_empty_cells() -> None:
    """csv.DictReader gives None for the cells of a short row."""
    record = one_record(cells(title_en=None, description_en=None, date=None, rights=None, access=None))
    assert record.title == Text("Tượng thần Shiva", "")
    assert (record.date, record.nav_date, record.rights, record.access) == ("", None, "", "")


def test_nfd_cells_and_image_paths_become_nfc() -> None:
    record = one_record(
        cells(
            inventory_no=nfd("KH-Đá-01"),
            title_vi=nfd("Tượng thần Shiva"),
            site=nfd("Tháp Bà Ponagar"),
            images=nfd("hiện vật/mặt trước.tif; hiện vật/mặt sau.tif"),
        )
    )
    assert record.inventory_number == "KH-Đá-01"
    assert record.title.vi == "Tượng thần Shiva"
    assert record.site == "Tháp Bà Ponagar"
    assert record.images == ("hiện vật/mặt trước.tif", "hiện vật/mặt sau.tif")
    for value in (record.inventory_number, record.title.vi, record.site, *record.images):
        assert unicodedata.is_normalized("NFC", value)


def test_nfd_header_names_match_the_column_map() -> None:
    columns = ColumnMap(inventory_number="Số hiệu", images="Ảnh")
    record = one_record({nfd(" Số hiệu"): "KH-1", nfd("Ảnh "): "a.tif"}, columns)
    assert (record.inventory_number, record.images) == ("KH-1", ("a.tif",))


def test_values_that_are_not_strings_become_text() -> None:
    """JSON exports give numbers: an inventory number 101, a date 1793."""
    record = one_record(cells(inventory_no=101, date=1793, dimensions_cm=63.5))
    assert record.inventory_number == "101"
    assert (record.date, record.nav_date) == ("1793", datetime(1793, 1, 1, tzinfo=UTC))
    assert record.dimensions == "63.5"


def test_missing_english_is_left_out_not_copied() -> None:
    """A Vietnamese title under "en" would be mislabelled; IIIF clients fall back across languages themselves."""
    record = one_record(cells(title_en="", description_en="  ", attribution_en=None))
    assert record.title == Text("Tượng thần Shiva", "")
    assert record.title.language_map() == {"vi": ["Tượng thần Shiva"]}
    assert record.description.language_map() == {"vi": ["Tượng đá Chăm; ba mặt chụp."]}
    assert record.attribution.language_map() == {"vi": ["Bảo tàng Di sản tỉnh"]}


def test_missing_vietnamese_is_left_out_not_copied() -> None:
    record = one_record(cells(title_vi="", title_en="Shiva statue"))
    assert record.title.language_map() == {"en": ["Shiva statue"]}


def test_both_languages_empty_give_an_empty_map() -> None:
    record = one_record(cells(description_vi=" ", description_en=""))
    assert not record.description
    assert record.description.language_map() == {}


@pytest.mark.parametrize(
    ("text", "truthy", "expected"),
    [
        (Text("Bia đá", "Stele"), True, {"vi": ["Bia đá"], "en": ["Stele"]}),
        (Text("Bia đá", ""), True, {"vi": ["Bia đá"]}),
        (Text("", "Stele"), True, {"en": ["Stele"]}),
        (Text("", ""), False, {}),
        (Text(), False, {}),
    ],
)
def test_text_language_map(text: Text, truthy: bool, expected: dict[str, list[str]]) -> None:
    assert bool(text) is truthy
    assert text.language_map() == expected


# -- images ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a.tif", ("a.tif",)),
        ("a.tif;b.tif", ("a.tif", "b.tif")),
        (" a.tif ; b.tif ;", ("a.tif", "b.tif")),
        (";; a.tif ;;  ; b.tif;;", ("a.tif", "b.tif")),
        ("b.tif; a.tif; b.tif; a.tif", ("b.tif", "a.tif")),  # duplicates dropped, first order kept
        ("dir/b.tif;/dir/b.tif/; dir/b.tif ", ("dir/b.tif",)),  # outer slashes stripped before comparing
        ("hien-vat/KH  mặt   trước.tif", ("hien-vat/KH mặt trước.tif",)),
        (nfd("mặt trước.tif;mặt trước.tif"), ("mặt trước.tif",)),  # NFD and NFC are one file
        (["a.tif", " b.tif ", "", None, "a.tif"], ("a.tif", "b.tif")),  # a JSON list
        ([nfd("/hiện vật/ảnh.jpg")], ("hiện vật/ảnh.jpg",)),
        ("", ()),
        ("  ", ()),
        (None, ()),
        ([], ()),
    ],
)
def test_split_images(value: object, expected: tuple[str, ...]) -> None:
    assert split_images(value) == expected


@pytest.mark.parametrize("cell", ["dir/a.tif; / dir/a.tif", "dir/a.tif;dir/a.tif /"])
def test_spaces_next_to_outer_slashes_are_stripped(cell: str) -> None:
    assert split_images(cell) == ("dir/a.tif",)


def test_images_keep_their_display_order() -> None:
    record = one_record(cells(images="tu-lieu/004.tif; tu-lieu/001.tif ;tu-lieu/003.tif;tu-lieu/001.tif"))
    assert record.images == ("tu-lieu/004.tif", "tu-lieu/001.tif", "tu-lieu/003.tif")


# -- rights ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "canonical"),
    [
        (CC_BY, CC_BY),
        ("https://creativecommons.org/licenses/by/4.0/", CC_BY),
        ("https://creativecommons.org/licenses/by/4.0", CC_BY),
        ("http://creativecommons.org/licenses/by/4.0", CC_BY),
        ("https://creativecommons.org/licenses/by-nc-sa/4.0", "http://creativecommons.org/licenses/by-nc-sa/4.0/"),
        ("https://creativecommons.org/licenses/by-nd/3.0/vn", "http://creativecommons.org/licenses/by-nd/3.0/vn/"),
        ("http://creativecommons.org/licenses/by/2.5/scl/", "http://creativecommons.org/licenses/by/2.5/scl/"),
        ("https://creativecommons.org/publicdomain/zero/1.0/", "http://creativecommons.org/publicdomain/zero/1.0/"),
        ("https://creativecommons.org/publicdomain/zero/1.0", "http://creativecommons.org/publicdomain/zero/1.0/"),
        ("https://creativecommons.org/publicdomain/mark/1.0", "http://creativecommons.org/publicdomain/mark/1.0/"),
        ("http://rightsstatements.org/vocab/InC/1.0/", "http://rightsstatements.org/vocab/InC/1.0/"),
        ("https://rightsstatements.org/vocab/InC-EDU/1.0", "http://rightsstatements.org/vocab/InC-EDU/1.0/"),
        ("https://rightsstatements.org/vocab/InC-OW-EU/1.0/", "http://rightsstatements.org/vocab/InC-OW-EU/1.0/"),
        ("http://rightsstatements.org/vocab/NoC-US/1.0", "http://rightsstatements.org/vocab/NoC-US/1.0/"),
        ("https://rightsstatements.org/vocab/UND/1.0/", "http://rightsstatements.org/vocab/UND/1.0/"),
        # The human-readable page of a statement names the same statement.
        ("https://rightsstatements.org/page/NoC-NC/1.0/", "http://rightsstatements.org/vocab/NoC-NC/1.0/"),
    ],
)
def test_canonical_rights(uri: str, canonical: str) -> None:
    assert canonical_rights(uri) == canonical
    assert canonical_rights(canonical) == canonical  # canonical is a fixed point
    record = one_record(cells(rights=f" {uri} "))
    assert record.rights == canonical


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "CC BY 4.0",
        "creativecommons.org/licenses/by/4.0/",
        "ftp://creativecommons.org/licenses/by/4.0/",
        "http://www.creativecommons.org/licenses/by/4.0/",
        "http://creativecommons.org/licenses/by/4/",
        "http://creativecommons.org/licenses/by/4.0/legalcode",
        "http://creativecommons.org/licenses/by/4.0/deed.vi",
        "http://creativecommons.org/licenses/BY/4.0/",
        "http://creativecommons.org/about/4.0/",
        "http://rightsstatements.org/vocab/InC/",
        "http://rightsstatements.org/vocab/Copyrighted/1.0/",
        "http://rightsstatements.org/vocab/inc/1.0/",
        "http://rightsstatements.org/data/InC/1.0/",
        "http://example.org/licenses/by/4.0/",
    ],
)
def test_unrecognised_rights_uris(uri: str) -> None:
    assert canonical_rights(uri) is None


@pytest.mark.parametrize(
    "uri",
    [
        "http://creativecommons.org/licenses/by/\u0664.\u0660/",  # Arabic-Indic 4.0
        "http://creativecommons.org/licenses/by/\uff14.\uff10/",  # fullwidth 4.0 (NFC keeps it)
        "http://rightsstatements.org/vocab/InC/\u0967.\u0966/",  # Devanagari 1.0
    ],
)
def test_rights_versions_are_ascii_digits(uri: str) -> None:
    assert canonical_rights(uri) is None


@pytest.mark.parametrize(
    "uri", ["http://creativecommons.org/licenses/by/4.0/\n", "http://rightsstatements.org/vocab/InC/1.0/\n"]
)
def test_rights_with_a_final_newline_are_not_canonical(uri: str) -> None:
    """Unreachable through parse_records (cells are cleaned) but canonical_rights is public."""
    assert canonical_rights(uri) is None


@pytest.mark.parametrize("value", ["\u0661\u0668\u0665\u0660", "\uff11\uff18\uff15\uff10", "1850\n"])
def test_dates_are_ascii_digits_only(value: str) -> None:
    with pytest.raises(ValueError, match="malformed date"):
        parse_date(value)


def test_extra_rights_are_accepted_exactly_as_configured() -> None:
    house = "https://museum.example.vn/quyen-su-dung"
    assert canonical_rights(house) is None
    assert canonical_rights(house, [house]) == house
    assert canonical_rights(CC_BY, [house]) == CC_BY  # the standard ones still work
    rows = numbered(cells(rights=f"  {house} "), good(3), cells(inventory_no="KH-X", rights=house + "/"))
    parsed = parse_records(rows, COLUMNS, extra_rights=[house])
    assert [(r.inventory_number, r.rights) for r in parsed.records] == [("KH-HV-0101", house), ("KH-OK-0003", CC_BY)]
    assert [str(p) for p in parsed.problems] == [
        f"row 4 (KH-X): unknown rights URI '{house}/' (use a Creative Commons or RightsStatements.org URI)"
    ]


def test_extra_rights_can_be_any_iterable() -> None:
    house = "https://museum.example.vn/quyen"
    parsed = parse_records(numbered(cells(rights=house)), COLUMNS, extra_rights=iter([house]))
    assert [r.rights for r in parsed.records] == [house]


def test_the_demo_rights_are_all_recognised() -> None:
    for uri in (
        "http://creativecommons.org/licenses/by/4.0/",
        "http://creativecommons.org/licenses/by-nc/4.0/",
        "http://creativecommons.org/publicdomain/mark/1.0/",
        "http://creativecommons.org/publicdomain/zero/1.0/",
        "http://rightsstatements.org/vocab/InC/1.0/",
        "http://rightsstatements.org/vocab/InC-EDU/1.0/",
    ):
        assert canonical_rights(uri) == uri


# -- dates -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1850", datetime(1850, 1, 1, tzinfo=UTC)),
        ("1850-03", datetime(1850, 3, 1, tzinfo=UTC)),
        ("1850-03-12", datetime(1850, 3, 12, tzinfo=UTC)),
        ("1793", datetime(1793, 1, 1, tzinfo=UTC)),
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC)),
        ("0001", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31", datetime(9999, 12, 31, tzinfo=UTC)),
        # as Vietnamese museums write them: day first, or in words
        ("31/12/1886", datetime(1886, 12, 31, tzinfo=UTC)),
        ("1/2/1990", datetime(1990, 2, 1, tzinfo=UTC)),
        ("01/02/1990", datetime(1990, 2, 1, tzinfo=UTC)),
        ("31.12.1886", datetime(1886, 12, 31, tzinfo=UTC)),
        ("31-12-1886", datetime(1886, 12, 31, tzinfo=UTC)),
        ("29/02/2024", datetime(2024, 2, 29, tzinfo=UTC)),
        ("12/1886", datetime(1886, 12, 1, tzinfo=UTC)),
        ("3/1886", datetime(1886, 3, 1, tzinfo=UTC)),
        ("12.1886", datetime(1886, 12, 1, tzinfo=UTC)),
        ("năm 1886", datetime(1886, 1, 1, tzinfo=UTC)),
        ("Năm 1886", datetime(1886, 1, 1, tzinfo=UTC)),
        ("NĂM 1886", datetime(1886, 1, 1, tzinfo=UTC)),
        ("năm 938", datetime(938, 1, 1, tzinfo=UTC)),
        ("tháng 12 năm 1886", datetime(1886, 12, 1, tzinfo=UTC)),
        ("ngày 31 tháng 12 năm 1886", datetime(1886, 12, 31, tzinfo=UTC)),
    ],
)
def test_parse_date(value: str, expected: datetime) -> None:
    parsed = parse_date(value)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is UTC
    assert (parsed.hour, parsed.minute, parsed.second, parsed.microsecond) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1850/03/12", f"malformed date '1850/03/12' {EXPECTED}"),
        ("1850-13-01", "date '1850-13-01' is not a real date (there is no month 13)"),
        ("1850-13", "date '1850-13' is not a real date (there is no month 13)"),
        ("1850-00", "date '1850-00' is not a real date (there is no month 0)"),
        ("1850-02-30", "date '1850-02-30' is not a real date (1850-02 has 28 days)"),
        ("1900-02-29", "date '1900-02-29' is not a real date (1900-02 has 28 days)"),
        ("1850-04-31", "date '1850-04-31' is not a real date (1850-04 has 30 days)"),
        ("31/02/1990", "date '31/02/1990' is not a real date (1990-02 has 28 days)"),
        ("29/02/2023", "date '29/02/2023' is not a real date (2023-02 has 28 days)"),
        ("32/01/1990", "date '32/01/1990' is not a real date (1990-01 has 31 days)"),
        ("00/01/1990", "date '00/01/1990' is not a real date (1990-01 has 31 days)"),
        ("31/13/1990", "date '31/13/1990' is not a real date (there is no month 13)"),
        ("13/1886", "date '13/1886' is not a real date (there is no month 13)"),
        ("ngày 31 tháng 4 năm 1886", "date 'ngày 31 tháng 4 năm 1886' is not a real date (1886-04 has 30 days)"),
        ("31/12/86", f"malformed date '31/12/86' {EXPECTED}"),
        ("31/12-1886", f"malformed date '31/12-1886' {EXPECTED}"),
        ("1/1/1/1886", f"malformed date '1/1/1/1886' {EXPECTED}"),
        ("năm", f"malformed date 'năm' {EXPECTED}"),
        ("năm 1886 TCN", f"malformed date 'năm 1886 TCN' {EXPECTED}"),
        ("năm 12345", f"malformed date 'năm 12345' {EXPECTED}"),
        ("ngày 31 năm 1886", f"malformed date 'ngày 31 năm 1886' {EXPECTED}"),
        ("thế kỷ X", f"malformed date 'thế kỷ X' {EXPECTED}"),
        ("850", f"malformed date '850' {EXPECTED}"),
        ("18500", f"malformed date '18500' {EXPECTED}"),
        ("1850-3-12", f"malformed date '1850-3-12' {EXPECTED}"),
        ("1850-03-12T10:00", f"malformed date '1850-03-12T10:00' {EXPECTED}"),
        ("1850.0", f"malformed date '1850.0' {EXPECTED}"),
        ("c. 1850", f"malformed date 'c. 1850' {EXPECTED}"),
        ("1850s", f"malformed date '1850s' {EXPECTED}"),
        ("", f"malformed date '' {EXPECTED}"),
        ("0000", "date '0000' is before year 1; put it in the period column"),
        ("-0500", "date '-0500' is before year 1; put it in the period column"),
    ],
)
def test_parse_date_rejects(value: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_date(value)
    assert str(raised.value) == message


@pytest.mark.parametrize("value", ["", "  ", None])
def test_an_empty_date_has_no_nav_date(value: str | None) -> None:
    record = one_record(cells(date=value))
    assert (record.date, record.nav_date) == ("", None)


def test_the_date_text_is_kept_as_written() -> None:
    record = one_record(cells(date=" 1850-03 "))
    assert record.date == "1850-03"
    assert record.nav_date == datetime(1850, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cell", "nav_date"),
    [
        ("31/12/1886", datetime(1886, 12, 31, tzinfo=UTC)),
        ("12/1886", datetime(1886, 12, 1, tzinfo=UTC)),
        ("năm 1886", datetime(1886, 1, 1, tzinfo=UTC)),
        (nfd(" Ngày  31 tháng 12  năm 1886 "), datetime(1886, 12, 31, tzinfo=UTC)),  # NFD, stray spaces
    ],
)
def test_a_row_with_a_vietnamese_date_gets_its_nav_date(cell: str, nav_date: datetime) -> None:
    record = one_record(cells(date=cell))
    assert record.nav_date == nav_date
    assert record.date == clean(cell)  # shown as written


def test_an_impossible_date_is_not_called_malformed() -> None:
    parsed = parse_records(numbered(cells(date="31/02/1990"), cells(inventory_no="KH-2", date="31-02-1990x")), COLUMNS)
    assert parsed.records == []
    assert [str(p) for p in parsed.problems] == [
        "row 2 (KH-HV-0101): date '31/02/1990' is not a real date (1990-02 has 28 days)",
        f"row 3 (KH-2): malformed date '31-02-1990x' {EXPECTED}",
    ]


# -- column maps -------------------------------------------------------------------------------------------------

RENAMED = ColumnMap(
    inventory_number="Số hiệu",
    title_vi="Tên",
    title_en="Name",
    description_vi="Mô tả",
    description_en="Description",
    object_type="Loại",
    heritage_rank="Xếp hạng",
    date="Năm",
    period="Niên đại",
    material="Chất liệu",
    dimensions="Kích thước",
    site="Địa điểm",
    access="Truy cập",
    rights="Bản quyền",
    attribution_vi="Nguồn",
    attribution_en="Credit",
    images="Ảnh",
)


def test_a_renamed_column_map_reads_every_field() -> None:
    row = {
        "Số hiệu": "BT-001",
        "Tên": "Bình gốm",
        "Name": "Jar",
        "Mô tả": "Bình gốm hoa lam.",
        "Description": "Blue-and-white jar.",
        "Loại": "hiện vật",
        "Xếp hạng": "Bảo vật quốc gia",
        "Năm": "1850-03",
        "Niên đại": "thế kỷ XV",
        "Chất liệu": "gốm",
        "Kích thước": "28 x 16",
        "Địa điểm": "Kho",
        "Truy cập": "Restricted",
        "Bản quyền": "https://creativecommons.org/publicdomain/zero/1.0",
        "Nguồn": "Bảo tàng",
        "Credit": "Museum",
        "Ảnh": "gom/1.jpg; gom/2.jpg",
        # The default names are just extra columns under this map.
        "inventory_no": "IGNORED",
        "images": "ignored.tif",
    }
    record = one_record(row, RENAMED)
    assert record == Record(
        row=2,
        inventory_number="BT-001",
        title=Text("Bình gốm", "Jar"),
        description=Text("Bình gốm hoa lam.", "Blue-and-white jar."),
        object_type="hiện vật",
        heritage_rank="Bảo vật quốc gia",
        date="1850-03",
        nav_date=datetime(1850, 3, 1, tzinfo=UTC),
        period="thế kỷ XV",
        material="gốm",
        dimensions="28 x 16",
        site="Kho",
        access="restricted",
        rights="http://creativecommons.org/publicdomain/zero/1.0/",
        attribution=Text("Bảo tàng", "Museum"),
        images=("gom/1.jpg", "gom/2.jpg"),
    )


def test_problems_name_the_renamed_columns() -> None:
    parsed = parse_records(numbered({"Số hiệu": "", "Ảnh": "a.tif"}, {"Số hiệu": "BT-2", "Ảnh": " ; "}), RENAMED)
    assert [str(p) for p in parsed.problems] == [
        "row 2: missing inventory number (column 'Số hiệu')",
        "row 3 (BT-2): no image files listed (column 'Ảnh')",
    ]


def test_default_rows_under_a_renamed_map_have_no_inventory_number() -> None:
    problem = one_problem(cells(), RENAMED)
    assert problem == Problem(2, "", "missing inventory number (column 'Số hiệu')")


def test_column_map_defaults_and_required() -> None:
    assert COLUMNS.required() == ("inventory_no", "images")
    assert RENAMED.required() == ("Số hiệu", "Ảnh")
    assert COLUMNS.dimensions == "dimensions_cm"
    # The default names are exactly the demo export's columns.
    with DEMO_EXPORT.open(encoding="utf-8-sig", newline="") as handle:
        demo_header = next(csv.reader(handle))
    assert sorted(COLUMNS.model_dump().values()) == sorted(demo_header)
    assert missing_columns(demo_header, COLUMNS) == []


def test_column_map_rejects_unknown_keys_and_is_frozen() -> None:
    with pytest.raises(ValidationError, match="inventory"):
        ColumnMap.model_validate({"inventory": "Số hiệu"})
    with pytest.raises(ValidationError):
        COLUMNS.images = "Ảnh"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("header", "columns", "missing"),
    [
        (["inventory_no", "title_vi", "images"], COLUMNS, []),
        (["inventory_no", "title_vi"], COLUMNS, ["images"]),
        (["title_vi", "images"], COLUMNS, ["inventory_no"]),
        ([], COLUMNS, ["inventory_no", "images"]),
        ([" inventory_no ", "\timages"], COLUMNS, []),  # stray whitespace in header names
        (["\ufeffinventory_no", "images"], COLUMNS, ["inventory_no"]),  # a BOM is the reader's job
        (["inventory_no", "images"], RENAMED, ["Số hiệu", "Ảnh"]),
        ([nfd("Số hiệu"), nfd(" Ảnh ")], RENAMED, []),
        (["Số hiệu", "Anh"], RENAMED, ["Ảnh"]),
        (["INVENTORY_NO", "Images"], COLUMNS, ["inventory_no", "images"]),  # names are case-sensitive
    ],
)
def test_missing_columns(header: list[str], columns: ColumnMap, missing: list[str]) -> None:
    assert missing_columns(header, columns) == missing


def test_missing_columns_takes_any_iterable() -> None:
    assert missing_columns(iter(("inventory_no", "images")), COLUMNS) == []
    assert missing_columns(("images",), COLUMNS) == ["inventory_no"]


# -- grouping ----------------------------------------------------------------------------------------------------


def test_field_gives_grouping_values_by_name() -> None:
    record = one_record(cells(material=" gạch;  đá ong "))
    assert {name: record.field(name) for name in GROUPABLE} == {
        "object_type": "hiện vật",
        "site": "Kho Bảo tàng",
        "heritage_rank": "Hiện vật trưng bày",
        "period": "thế kỷ X",
        "material": "gạch; đá ong",
    }
    assert record.field("no_such_field") == ""
    assert record.field("nav_date") == ""  # not text
    assert record.field("title") == ""  # a Text, not a str
    assert record.field("images") == ""


def test_groupable_fields_are_text_fields_of_a_record() -> None:
    types = {f.name: f.type for f in fields(Record)}
    for name in GROUPABLE:
        assert types[name] in (str, "str")


# -- properties --------------------------------------------------------------------------------------------------

cell_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),  # no lone surrogates
        st.sampled_from(" \t\n\r\u00a0\u2003\u3000\u0301\u0303\u0323e\u00e9aăâđ"),
    ),
    max_size=40,
)


@given(cell_text)
def test_clean_is_idempotent_nfc_and_trimmed(value: str) -> None:
    cleaned = clean(value)
    assert clean(cleaned) == cleaned
    assert unicodedata.is_normalized("NFC", cleaned)
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert not any(ch.isspace() and ch != " " for ch in cleaned)
    assert clean(nfd(value)) == cleaned


@given(st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.booleans()))
def test_clean_of_non_text_values(value: object) -> None:
    assert clean(value) == ("" if value is None else str(value))


@given(cell_text, cell_text)
def test_language_map_has_only_the_languages_given(vi: str, en: str) -> None:
    text = Text(clean(vi), clean(en))
    language_map = text.language_map()
    if not (text.vi or text.en):
        assert language_map == {}
        assert not text
    else:
        assert text
        assert language_map == {language: [value] for language, value in (("vi", text.vi), ("en", text.en)) if value}
        for values in language_map.values():
            assert len(values) == 1 and values[0]


@given(st.lists(st.text(alphabet=st.sampled_from("ab/ ;é\u0301.\t"), max_size=8), max_size=6))
def test_split_images_gives_unique_clean_paths(parts: list[str]) -> None:
    from_cell = split_images(";".join(parts))
    for images in (from_cell, split_images([p.replace(";", "") for p in parts])):
        assert len(set(images)) == len(images)
        for path in images:
            assert path
            assert unicodedata.is_normalized("NFC", path)
            assert "  " not in path and "\t" not in path
            assert not path.startswith("/") and not path.endswith("/")
            assert ";" not in path


@given(st.lists(st.text(alphabet=st.sampled_from("ab/;é\u0301."), max_size=8), max_size=6))
def test_split_images_without_spaces_matches_a_simple_model(parts: list[str]) -> None:
    """Spaces are left out of the alphabet: those next to an outer slash have their own test."""
    cell = ";".join(parts)
    expected: list[str] = []
    for part in cell.split(";"):
        path = unicodedata.normalize("NFC", part).strip("/")
        if path and path not in expected:
            expected.append(path)
    images = split_images(cell)
    assert images == tuple(expected)
    assert split_images(";".join(images)) == images  # stable once split
    assert split_images(list(images)) == images


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_parse_date_round_trips_every_real_day(day: date) -> None:
    text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
    assert parse_date(text) == datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert parse_date(text[:7]) == datetime(day.year, day.month, 1, tzinfo=UTC)
    assert parse_date(text[:4]) == datetime(day.year, 1, 1, tzinfo=UTC)
